import assert from "node:assert/strict";
import { test } from "node:test";
import { hostScriptText } from "../../test/harness/hostScript";
import { scriptWithPoll, shippedPoll } from "../lib/scriptVariants";

// The CI smoke once failed because the host script's poll line changed under the bench's edit.
test("the poll variant changes exactly the host script's HEALTH_POLL line, and wait_served reads it", () => {
  const stock = hostScriptText();
  assert.match(shippedPoll(), /^[0-9]+(\.[0-9]+)?$/);
  const variant = scriptWithPoll("0.05");
  const changed = stock.split("\n").filter((line, i) => variant.split("\n")[i] !== line);
  assert.deepEqual(changed, [`HEALTH_POLL=${shippedPoll()}`]);
  assert.match(variant, /^HEALTH_POLL=0\.05$/m);
  const waitServed = /^wait_served\(\) \{\n([\s\S]*?)\n\}/m.exec(stock)?.[1] ?? "";
  assert.match(waitServed, /sleep "\$HEALTH_POLL"/);
});
