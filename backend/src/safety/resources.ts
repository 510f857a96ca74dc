import type { SafetyCategory, SafetyResource } from './types.js';

/**
 * Crisis lines and emergency numbers per country. Reviewed by hand against
 * each service's own site (SAFETY.md says when and how to re-check them);
 * a country without an entry gets findahelpline.com and a generic line.
 */
interface CountryResources {
  /** Suicide and self-harm: a crisis line. */
  crisis: SafetyResource;
  /** Immediate danger (and the second line of every crisis answer). */
  emergency: SafetyResource;
  /** Abuse and violence at home, where a national line exists. */
  abuse?: SafetyResource;
}

const findAHelpline = (country?: string): SafetyResource => ({
  name: 'Find A Helpline',
  url: country ? `https://findahelpline.com/countries/${country.toLowerCase()}` : 'https://findahelpline.com',
});

const emergencyNumber = (phone: string, url = 'https://findahelpline.com'): SafetyResource => ({
  name: `Emergency ${phone}`,
  phone,
  url,
});

const EU_112 = 'https://digital-strategy.ec.europa.eu/en/policies/112';

const COUNTRIES: Readonly<Record<string, CountryResources>> = {
  ES: {
    crisis: {
      name: 'Línea 024 de atención a la conducta suicida',
      phone: '024',
      url: 'https://www.sanidad.gob.es/linea024/',
    },
    emergency: { name: 'Emergencias 112', phone: '112', url: EU_112 },
    abuse: {
      name: '016 Atención a víctimas de violencia de género',
      phone: '016',
      url: 'https://violenciagenero.igualdad.gob.es/',
    },
  },
  US: {
    crisis: { name: '988 Suicide & Crisis Lifeline', phone: '988', text: 'Text 988', url: 'https://988lifeline.org' },
    emergency: { name: 'Emergency 911', phone: '911', url: 'https://www.911.gov' },
    abuse: {
      name: 'National Domestic Violence Hotline',
      phone: '1-800-799-7233',
      text: 'Text START to 88788',
      url: 'https://www.thehotline.org',
    },
  },
  GB: {
    crisis: { name: 'Samaritans', phone: '116 123', url: 'https://www.samaritans.org' },
    emergency: {
      name: 'Emergency 999',
      phone: '999',
      url: 'https://www.nhs.uk/nhs-services/urgent-and-emergency-care-services/when-to-call-999/',
    },
    abuse: {
      name: 'National Domestic Abuse Helpline',
      phone: '0808 2000 247',
      url: 'https://www.nationaldahelpline.org.uk',
    },
  },
  MX: { crisis: findAHelpline('MX'), emergency: emergencyNumber('911') },
};

// Latin America: Find A Helpline's page for the country, and its emergency number where we are sure of it.
const LATIN_AMERICA: Readonly<Record<string, string | undefined>> = {
  AR: '911',
  BO: undefined,
  CL: undefined,
  CO: '123',
  CR: '911',
  CU: undefined,
  DO: '911',
  EC: '911',
  SV: '911',
  GT: undefined,
  HN: '911',
  NI: undefined,
  PA: '911',
  PY: '911',
  PE: undefined,
  PR: '911',
  UY: '911',
  VE: '911',
};

// Where 112 reaches the emergency services (the EU and the rest of Europe's 112 countries we list).
const EUROPE_112 = new Set(['AT', 'BE', 'DE', 'DK', 'FI', 'FR', 'GR', 'IE', 'IT', 'NL', 'NO', 'PL', 'PT', 'SE', 'CH']);

const LOCAL_EMERGENCY: Record<string, SafetyResource> = {
  en: {
    name: 'Your local emergency number',
    text: '112 in Europe, 911 in most of the Americas',
    url: 'https://findahelpline.com',
  },
  es: {
    name: 'Tu número local de emergencias',
    text: '112 en Europa, 911 en gran parte de América',
    url: 'https://findahelpline.com',
  },
};

function countryResources(country: string | undefined, language: string): CountryResources {
  const known = country ? COUNTRIES[country] : undefined;
  if (known) {
    return known;
  }
  const generic = LOCAL_EMERGENCY[language] ?? (LOCAL_EMERGENCY.en as SafetyResource);
  if (country && country in LATIN_AMERICA) {
    const phone = LATIN_AMERICA[country];
    return { crisis: findAHelpline(country), emergency: phone ? emergencyNumber(phone) : generic };
  }
  if (country && EUROPE_112.has(country)) {
    return { crisis: findAHelpline(country), emergency: emergencyNumber('112', EU_112) };
  }
  return { crisis: findAHelpline(country), emergency: generic };
}

/** What the answer lists, most urgent first: the emergency number leads only for immediate danger. */
export function resourcesFor(
  category: SafetyCategory,
  country: string | undefined,
  language: string,
): SafetyResource[] {
  const { crisis, emergency, abuse } = countryResources(country, language);
  if (category === 'danger') {
    return abuse ? [emergency, abuse] : [emergency, crisis];
  }
  return [crisis, emergency];
}
