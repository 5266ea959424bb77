// A PostgreSQL password belongs in PGPASSWORD, not in the --users URL that ps shows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeStore, urlPasswordWarning } from "./open.ts";

test("a PostgreSQL URL with a password is warned about (without the password); one without, or another store, is not", () => {
  const w = urlPasswordWarning("postgres://nstp:s3cret@db.example:5432/nstp");
  assert.match(w ?? "", /carries a password.*process list.*PGPASSWORD/);
  assert.doesNotMatch(w!, /s3cret/);
  assert.match(urlPasswordWarning("postgresql://nstp:x@127.0.0.1/nstp") ?? "", /PGPASSWORD/);
  for (const spec of ["postgres://nstp@db.example/nstp", "users.db", "sqlite:/var/lib/nstp/creds", "users.json"]) assert.equal(urlPasswordWarning(spec), undefined, spec);
  assert.equal(describeStore("postgres://nstp:s3cret@db.example/nstp"), "postgres://db.example:5432/nstp");
});
