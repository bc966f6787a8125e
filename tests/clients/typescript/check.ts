// Calls made with openapi-fetch against the types openapi-typescript generates from openapi.json. It is only
// type-checked (`tsc --noEmit`, by scripts/contract): a change of the document that breaks these calls, or that loosens
// the types so that the wrong calls at the bottom compile, fails the check.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema";

type ErrorCode = components["schemas"]["ErrorCode"];
type Role = components["schemas"]["Role"];

const api = createClient<paths>({ baseUrl: "http://127.0.0.1:8080" });

export async function onboard(email: string): Promise<{ tenantId: string; roles: Role[]; keyPrefix: string }> {
  const registered = await api.POST("/v1/auth/register", {
    body: { email, name: "Ann Example", password: "correct horse battery staple" },
  });
  if (registered.error) {
    const code: ErrorCode = registered.error.code;
    throw new Error(`register failed: ${code} (${registered.error.detail})`);
  }
  const verified: boolean = registered.data.user.email_verified;
  const headers = { Authorization: `Bearer ${registered.data.tokens.access_token}` };

  const tenant = await api.POST("/v1/tenants", { body: { name: "Acme QA", slug: "acme-qa" }, headers });
  if (tenant.error) throw new Error(tenant.error.code);
  const tenantId: string = tenant.data.id;

  const members = await api.GET("/v1/tenants/{tenant_id}/members", { params: { path: { tenant_id: tenantId } }, headers });
  const roles: Role[] = (members.data ?? []).map((member) => member.role);

  const key = await api.POST("/v1/tenants/{tenant_id}/api-keys", {
    params: { path: { tenant_id: tenantId } },
    body: { name: "CI", role: "viewer" },
    headers,
  });
  if (key.error) throw new Error(key.error.code);

  const runs = await api.GET("/v1/tenants/{tenant_id}/sync-runs", {
    params: { path: { tenant_id: tenantId }, query: { limit: 10 } },
    headers: { Authorization: `Bearer ${key.data.secret}` },
  });
  const statuses: components["schemas"]["SyncStatus"][] = (runs.data ?? []).map((run) => run.status);
  void verified;
  void statuses;
  return { tenantId, roles, keyPrefix: key.data.api_key.prefix };
}

export async function wrongCallsDoNotCompile(): Promise<void> {
  // @ts-expect-error: the role is an enum, "god" is not one of its values
  await api.PATCH("/v1/tenants/{tenant_id}/members/{user_id}", { params: { path: { tenant_id: "t", user_id: "u" } }, body: { role: "god" } });
  // @ts-expect-error: registering needs a password
  await api.POST("/v1/auth/register", { body: { email: "a@example.com", name: "A" } });
  // @ts-expect-error: no such path
  await api.GET("/v1/tenant");
}
