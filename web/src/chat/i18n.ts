/** The chat page's words, in English and Spanish, picked from the browser's languages. */

export type Lang = 'en' | 'es';

const en = {
  title: 'Focus',
  tagline: 'One small next step, when starting feels hard.',
  label: 'What is in your way right now?',
  hint: 'Enter sends. Shift+Enter starts a new line.',
  placeholder: 'I cannot start my essay…',
  send: 'Send',
  you: 'You',
  coach: 'Focus',
  thinking: 'Thinking…',
  writing: 'Writing the answer…',
  inLine: (position: number, seconds: number) => `You are number ${position} in line, about ${seconds} s.`,
  beingWritten: (seconds: number) => `Your answer is being written, about ${seconds} s.`,
  waitProgress: 'Waiting for your answer',
  countdown: (seconds: number) => `Busy right now. Trying again in ${seconds} s…`,
  retrying: 'Trying again…',
  tooLong: (wait: string) => `Busy for a while: please try again in ${wait}.`,
  networkLost: 'No connection. Your message is still in the box: press Enter to try again.',
  failed: (message: string) => `That did not work: ${message} Your message is still in the box.`,
  cutOff: 'The answer was cut off. Your message is back in the box: press Enter to ask again.',
  empty: 'Type a message first.',
  answered: 'Answer:',
  safetyIntro: 'You do not have to handle this alone. You can reach someone now:',
  call: (phone: string) => `Call ${phone}`,
  website: 'Website',
  deleteData: 'Delete my data',
  deleteTitle: 'Delete your data?',
  deleteBody:
    'This deletes your anonymous account on this device and everything Focus keeps about it: usage, queued answers and cached replies. It cannot be undone.',
  deleteConfirm: 'Delete everything',
  cancel: 'Cancel',
  deleted: 'Your data is deleted. A new message starts a new, empty account.',
  nothingToDelete: 'There is nothing stored about you yet.',
  deleteFailed: (message: string) => `Could not delete your data: ${message}`,
  signInFailed: 'Could not start a session. Check your connection and try again.',
  conversation: 'Conversation',
};

export type Strings = typeof en;

const es: Strings = {
  title: 'Focus',
  tagline: 'Un pequeño siguiente paso, cuando empezar cuesta.',
  label: '¿Qué te está frenando ahora mismo?',
  hint: 'Intro envía. Mayús+Intro añade una línea.',
  placeholder: 'No consigo empezar el trabajo…',
  send: 'Enviar',
  you: 'Tú',
  coach: 'Focus',
  thinking: 'Pensando…',
  writing: 'Escribiendo la respuesta…',
  inLine: (position, seconds) => `Eres el número ${position} en la cola, unos ${seconds} s.`,
  beingWritten: (seconds) => `Se está escribiendo tu respuesta, unos ${seconds} s.`,
  waitProgress: 'Esperando tu respuesta',
  countdown: (seconds) => `Hay mucha demanda. Lo intento de nuevo en ${seconds} s…`,
  retrying: 'Intentándolo de nuevo…',
  tooLong: (wait) => `Hay mucha demanda: inténtalo de nuevo dentro de ${wait}.`,
  networkLost: 'Sin conexión. Tu mensaje sigue en el cuadro: pulsa Intro para reintentarlo.',
  failed: (message) => `No ha funcionado: ${message} Tu mensaje sigue en el cuadro.`,
  cutOff: 'La respuesta se cortó. Tu mensaje vuelve a estar en el cuadro: pulsa Intro para preguntar otra vez.',
  empty: 'Escribe un mensaje primero.',
  answered: 'Respuesta:',
  safetyIntro: 'No tienes que pasar por esto a solas. Puedes hablar con alguien ahora:',
  call: (phone) => `Llamar al ${phone}`,
  website: 'Web',
  deleteData: 'Borrar mis datos',
  deleteTitle: '¿Borrar tus datos?',
  deleteBody:
    'Se borrará tu cuenta anónima de este dispositivo y todo lo que Focus guarda de ella: uso, respuestas en cola y respuestas guardadas. No se puede deshacer.',
  deleteConfirm: 'Borrarlo todo',
  cancel: 'Cancelar',
  deleted: 'Tus datos se han borrado. Un mensaje nuevo empieza una cuenta nueva y vacía.',
  nothingToDelete: 'Todavía no hay nada guardado sobre ti.',
  deleteFailed: (message) => `No se han podido borrar tus datos: ${message}`,
  signInFailed: 'No se ha podido iniciar la sesión. Revisa la conexión e inténtalo de nuevo.',
  conversation: 'Conversación',
};

/** The first of the browser's languages we speak; English otherwise. */
export function pickLang(languages: readonly string[]): Lang {
  for (const tag of languages) {
    const base = tag.toLowerCase().split('-')[0];
    if (base === 'es' || base === 'en') {
      return base;
    }
  }
  return 'en';
}

export function stringsFor(lang: Lang): Strings {
  return lang === 'es' ? es : en;
}

/** "3 min", "2 h": a long Retry-After in words a person can plan with. */
export function humanWait(seconds: number): string {
  if (seconds < 90) {
    return `${Math.ceil(seconds)} s`;
  }
  if (seconds < 90 * 60) {
    return `${Math.ceil(seconds / 60)} min`;
  }
  return `${Math.ceil(seconds / 3600)} h`;
}
