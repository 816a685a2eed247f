// What a TypeScript client of creditctl writes against the types openapi-typescript generates from the
// served /openapi.json (written beside this file as api.d.ts by tests/api/test_generated_clients.py, then
// checked with tsc --noEmit under strict). A member the document does not mark required, or a nullable
// object typed "any object, or Hold", fails the check.
import type { components } from "./api";

type Decision = components["schemas"]["Decision"];
type Account = components["schemas"]["Account"];
type HoldPage = components["schemas"]["HoldPage"];

export function remainingOf(decision: Decision): string | null {
  // hold is a Hold or null: after the null check, every member of a Hold is there
  return decision.hold === null ? null : decision.hold.remaining;
}

export function heldSoFar(decision: Decision): string {
  // @ts-expect-error hold may be null (a block, a deferral): the types must say so
  return decision.hold.amount;
}

export function balanceOf(decision: Decision): string | null {
  return decision.balance === null ? null : decision.balance.amount;
}

export function summary(decision: Decision): string {
  const id: string = decision.decision_id; // required: always in the answer
  const outcome: "approve" | "defer" | "block" | "freeze" = decision.outcome;
  const available: string | null = decision.available;
  return `${id} ${outcome} ${available ?? "unknown"}`;
}

export function accountBalance(account: Account): string | null {
  const fetched: string | null = account.balance === null ? null : account.balance.fetched_at;
  return fetched;
}

export function openRemainders(page: HoldPage): string[] {
  const next: string | null = page.next_cursor;
  return page.items.map((hold) => `${hold.id} ${hold.remaining} ${hold.status} ${next ?? "last"}`);
}
