/** What a crisis message is about; it chooses the fixed answer and its resources. */
export type SafetyCategory = 'suicide' | 'self_harm' | 'danger';

/** How the message said it: explicit wording, or an implicit phrasing of the same. */
export type SafetySignal = 'explicit' | 'implicit';

export interface SafetyResource {
  name: string;
  phone?: string;
  /** How to reach it other than by phone ("Text 988"). */
  text?: string;
  url: string;
}

/** One turn of a conversation, as every chat route receives it. */
export interface SafetyTurn {
  role: 'user' | 'assistant' | 'system';
  content: string;
}

export interface SafetyInput {
  message: string;
  history?: readonly SafetyTurn[];
  /** The request's own `locale` (BCP 47, e.g. "es-ES"): it wins over the header. */
  locale?: string;
  /** The raw Accept-Language header. */
  acceptLanguage?: string;
}

/** A message that must get the fixed safety answer instead of the coach. */
export interface SafetyVerdict {
  category: SafetyCategory;
  /** Which layer said so: the rules, the moderation model, or both. */
  source: 'rules' | 'model';
  /** Language of the answer (a language code with rules and texts, e.g. "es"). */
  language: string;
  /** ISO 3166 alpha-2 country whose resources are given, when known. */
  country: string | undefined;
}

/** The fixed answer, shaped like every chat answer plus `safety`. */
export interface SafetyAnswer {
  response: string;
  cached: false;
  coalesced: false;
  model: string;
  provider: 'safety';
  usage: { promptTokens: 0; completionTokens: 0 };
  safety: { triggered: true; category: SafetyCategory; resources: SafetyResource[] };
}
