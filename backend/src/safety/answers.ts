import { resourcesFor } from './resources.js';
import type { SafetyAnswer, SafetyCategory, SafetyResource, SafetyVerdict } from './types.js';

/**
 * The fixed, reviewed answers (SAFETY.md quotes them): they acknowledge the
 * person, list the resources, and say the coach is still there. Never
 * generated, cached or shared between requests.
 */
interface AnswerTexts {
  opening: Record<SafetyCategory, string>;
  closing: string;
  phone: string;
}

const TEXTS: Readonly<Record<string, AnswerTexts>> = {
  en: {
    opening: {
      suicide:
        "Thank you for telling me. It sounds like you are carrying something really heavy right now, and you don't have to carry it alone. Please talk to someone who can help, right now if you can:",
      self_harm:
        'Thank you for telling me. It sounds like you are going through something really painful, and you deserve support from a person, not just an app. You can reach someone now:',
      danger:
        'Thank you for telling me. What you describe sounds serious, and your safety comes first. If you are in danger right now, call the emergency number:',
    },
    closing:
      "If you are in immediate danger, call the emergency number now. I'm a focus coach, not a crisis service, but I'm still here to help you with focus whenever you want.",
    phone: 'call',
  },
  es: {
    opening: {
      suicide:
        'Gracias por contármelo. Parece que estás cargando con algo muy pesado ahora mismo, y no tienes por qué llevarlo solo ni sola. Por favor, habla con alguien que pueda ayudarte, ahora mismo si puedes:',
      self_harm:
        'Gracias por contármelo. Parece que estás pasando por algo muy doloroso, y mereces el apoyo de una persona, no solo de una app. Puedes hablar con alguien ahora:',
      danger:
        'Gracias por contármelo. Lo que cuentas suena grave, y tu seguridad es lo primero. Si estás en peligro ahora mismo, llama al número de emergencias:',
    },
    closing:
      'Si estás en peligro inmediato, llama ahora al número de emergencias. Soy un coach de concentración, no un servicio de crisis, pero sigo aquí para ayudarte a concentrarte cuando quieras.',
    phone: 'llama al',
  },
};

/** The model name answers carry, so clients and logs can tell them from the coach's. */
export const SAFETY_MODEL_NAME = 'safety-rules';

/** Languages with answer texts (a language with rules needs texts too: SAFETY.md, "Adding a language"). */
export const ANSWER_LANGUAGES: readonly string[] = Object.keys(TEXTS);

function textsFor(language: string): AnswerTexts {
  return TEXTS[language] ?? (TEXTS.en as AnswerTexts);
}

function resourceLine(resource: SafetyResource, texts: AnswerTexts): string {
  const ways = [resource.phone && `${texts.phone} ${resource.phone}`, resource.text].filter(Boolean).join(' · ');
  return `- ${resource.name}${ways ? `: ${ways}` : ''} (${resource.url})`;
}

/** The fixed answer for a verdict: text in the verdict's language, resources of its country. */
export function safetyAnswer(verdict: SafetyVerdict): SafetyAnswer {
  const texts = textsFor(verdict.language);
  const resources = resourcesFor(verdict.category, verdict.country, verdict.language);
  const response = [
    texts.opening[verdict.category],
    ...resources.map((resource) => resourceLine(resource, texts)),
    texts.closing,
  ].join('\n');
  return {
    response,
    cached: false,
    coalesced: false,
    model: SAFETY_MODEL_NAME,
    provider: 'safety',
    usage: { promptTokens: 0, completionTokens: 0 },
    safety: { triggered: true, category: verdict.category, resources },
  };
}

const OPENINGS = Object.values(TEXTS).flatMap((texts) => Object.values(texts.opening));

/** True for one of our fixed answers echoed back in a conversation's history. */
export function isSafetyAnswer(text: string): boolean {
  return OPENINGS.some((opening) => text.startsWith(opening));
}
