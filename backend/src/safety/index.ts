// The safety check's public side, for routes and the composition root.
export { safetyAnswer } from './answers.js';
export { createModerationModel, type ModerationModel } from './moderation-model.js';
export { LANGUAGES } from './rules/index.js';
export { createSafetyCheck, type SafetyCheck } from './safety-check.js';
export type { SafetyAnswer, SafetyCategory, SafetyInput, SafetyResource, SafetyTurn, SafetyVerdict } from './types.js';
