import { request } from './http-client.js';

export interface SignedIn {
  userId: string;
  token: string;
  expiresAt: string;
  headers: { authorization: string };
}

/** POST /api/auth/device: a new device account and its bearer header. */
export async function signUp(baseUrl: string, ip?: string): Promise<SignedIn> {
  const response = await request(`${baseUrl}/api/auth/device`, {
    method: 'POST',
    headers: ip ? { 'x-forwarded-for': ip } : {},
  });
  if (response.status !== 201) {
    throw new Error(`sign-up answered ${response.status}: ${response.text}`);
  }
  const body = response.json as Omit<SignedIn, 'headers'>;
  return { ...body, headers: { authorization: `Bearer ${body.token}` } };
}
