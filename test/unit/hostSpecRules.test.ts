// Every rule of hostSpec.ts at its boundary: ports, IPv4 addresses, host names, key lines, and
// entries whose values are not strings (YAML gives numbers, lists and null too). No mocks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  hostKeyProblems,
  HOST_NAME_PATTERN,
  IPV4_PATTERN,
  parseHostEntry,
  parseHostKey,
  parseKnownHostsLine,
  parsePort,
} from "../../components/hostSpec";

const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";
const ED25519 = `ssh-ed25519 ${KEY}`;
const TYPES = "ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521";
const NAME_RULE = "must be 1-32 lowercase letters, digits or '-' (not at the ends)";

/** The problems of an entry, as `field: message` (`-` for the entry as a whole). */
function problems(entry: unknown): string[] {
  const parsed = parseHostEntry(entry);
  assert.equal(parsed.ok, false, `expected ${JSON.stringify(entry)} to be refused`);
  return parsed.ok ? [] : parsed.problems.map((p) => `${p.field ?? "-"}: ${p.message}`);
}

describe("parsePort", () => {
  it("GIVEN 1, 65535, '22' THEN those numbers", () => {
    assert.deepEqual([parsePort(1), parsePort(65535), parsePort("22")], [1, 65535, 22]);
  });
  it("GIVEN anything else a YAML value can be THEN undefined", () => {
    for (const value of [
      0,
      65536,
      80.5,
      "80.5",
      " 80",
      "80\n",
      "\n80",
      "0x10",
      "1e3",
      "",
      [80],
      ["80"],
      true,
      null,
      undefined,
    ]) {
      assert.equal(parsePort(value), undefined, `parsePort(${JSON.stringify(value)})`);
    }
  });
});

describe("IPV4_PATTERN", () => {
  it("GIVEN every kind of octet (0-9, 10-99, 100-199, 200-249, 250-255) in every position THEN it matches", () => {
    for (const address of [
      "0.0.0.0",
      "9.99.199.249",
      "249.255.100.10",
      "250.100.249.255",
      "199.250.9.200",
      "255.255.255.255",
    ]) {
      assert.ok(IPV4_PATTERN.test(address), address);
    }
  });
  it("GIVEN an octet over 255, five octets, or anything around it THEN it does not", () => {
    for (const address of [
      "256.0.0.0",
      "0.256.0.0",
      "0.0.0.256",
      "260.0.0.0",
      "0.0.0.300",
      "1.1.1.1.1",
      "a1.1.1.1",
      "1.1.1.1a",
      "1.1.1",
      "01.1.1.1x",
      "localhost",
    ]) {
      assert.ok(!IPV4_PATTERN.test(address), address);
    }
  });
});

describe("HOST_NAME_PATTERN", () => {
  it("GIVEN 1 to 32 lowercase letters, digits and inner '-' THEN it matches; anything else does not", () => {
    for (const name of ["a", "0", "web-1", `a${"b".repeat(30)}c`]) {
      assert.ok(HOST_NAME_PATTERN.test(name), name);
    }
    for (const name of ["", "-a", "a-", "web_1", "web1!", "Web1", "a.b", `a${"b".repeat(31)}c`]) {
      assert.ok(!HOST_NAME_PATTERN.test(name), name);
    }
  });
});

describe("hostKeyProblems", () => {
  it("GIVEN `TYPE BASE64` with spaces around, between, or a comment THEN no problem", () => {
    for (const key of [
      ED25519,
      `  ${ED25519}  `,
      `ssh-ed25519 \t ${KEY}`,
      `${ED25519} me@laptop`,
    ]) {
      assert.deepEqual(hostKeyProblems(key), [], JSON.stringify(key));
    }
  });
  it("GIVEN an RSA key THEN the reason it cannot be verified, and the key to use instead", () => {
    assert.deepEqual(hostKeyProblems(`ssh-rsa ${KEY}`), [
      "RSA host keys cannot be verified by the SSH connections (pulumi-command offers only ssh-rsa/SHA-1, " +
        "which OpenSSH 8.8+ refuses): use the host's ed25519 or ecdsa key (ssh-keyscan -t ed25519 HOST)",
    ]);
  });
  it("GIVEN only a type THEN the key is missing, shown as empty", () => {
    assert.deepEqual(hostKeyProblems("ssh-ed25519"), ['the key is not base64 (got "")']);
  });
  it("GIVEN nothing THEN neither type nor key", () => {
    assert.deepEqual(hostKeyProblems(""), [
      `key type "" is not one of ${TYPES}`,
      'the key is not base64 (got "")',
    ]);
  });
  it("GIVEN base64 with anything before or after it, or too short THEN not base64, showing 24 characters", () => {
    assert.deepEqual(hostKeyProblems(`ssh-ed25519 $${KEY}`), [
      `the key is not base64 (got "$${KEY.slice(0, 23)}")`,
    ]);
    assert.deepEqual(hostKeyProblems(`ssh-ed25519 ${KEY}!`), [
      `the key is not base64 (got "${KEY.slice(0, 24)}")`,
    ]);
    assert.deepEqual(hostKeyProblems(`ssh-ed25519 ${KEY}====`), [
      `the key is not base64 (got "${KEY.slice(0, 24)}")`,
    ]);
    assert.deepEqual(hostKeyProblems("ssh-ed25519 AAAAC3NzaC1lZDI"), [
      'the key is not base64 (got "AAAAC3NzaC1lZDI")',
    ]);
  });
  it("GIVEN more than a comment after the key THEN it says what is expected", () => {
    assert.deepEqual(hostKeyProblems(`${ED25519} me@laptop extra`), [
      "expected `KEYTYPE BASE64` (at most a comment after it)",
    ]);
  });
});

describe("parseHostEntry: structured entries with values of the wrong type", () => {
  it("GIVEN null, a number or a list THEN what an entry must be", () => {
    for (const [entry, shown] of [
      [null, "null"],
      [7, "7"],
      [["web1", "local"], '["web1","local"]'],
    ] as const) {
      assert.deepEqual(problems(entry), [
        `-: must be an object {name, ssh, hostKey, port, root, bind} or a string, got ${shown}`,
      ]);
    }
  });
  it("GIVEN a name that is a number, or not a host name THEN the name's problem", () => {
    assert.deepEqual(problems({ name: 123 }), [`name: 123 ${NAME_RULE}`]);
    assert.deepEqual(problems({ name: "web_1" }), [`name: "web_1" ${NAME_RULE}`]);
  });
  it("GIVEN ssh that is a list, `local`, or has an upper-case user THEN ssh must be USER@ADDRESS[:PORT]", () => {
    for (const [ssh, shown] of [
      [["deploy@10.0.0.1"], '["deploy@10.0.0.1"]'],
      ["local", '"local"'],
      ["Deploy@10.0.0.1", '"Deploy@10.0.0.1"'],
      ["deploy@[]", '"deploy@[]"'],
    ] as const) {
      assert.deepEqual(problems({ name: "web1", ssh, hostKey: ED25519 }), [
        `ssh: ${shown} must be "USER@ADDRESS[:PORT]"`,
      ]);
    }
  });
  it("GIVEN a host key that is not a string THEN it says so (and nothing crashes)", () => {
    assert.deepEqual(problems({ name: "web1", ssh: "d@h", hostKey: 123 }), [
      'hostKey: must be a string "KEYTYPE BASE64", got 123',
    ]);
  });
  it("GIVEN a host key on a local host THEN it is only used with ssh", () => {
    assert.deepEqual(problems({ name: "web1", hostKey: ED25519 }), [
      "hostKey: is only used with `ssh`",
    ]);
  });
  it("GIVEN a port that is a list THEN not a TCP port", () => {
    assert.deepEqual(problems({ name: "web1", port: [8000] }), [
      "port: [8000] is not a TCP port (1-65535)",
    ]);
  });
  it("GIVEN a root that is a number THEN it must be a string", () => {
    assert.deepEqual(problems({ name: "web1", root: 123 }), ["root: 123 must be a string"]);
  });
  it("GIVEN a bind address in a list THEN it must be an IPv4 address", () => {
    assert.deepEqual(problems({ name: "web1", bind: ["127.0.0.1"] }), [
      'bind: ["127.0.0.1"] must be an IPv4 address such as 0.0.0.0',
    ]);
  });
});

describe("parseHostEntry: values kept as given, normalized", () => {
  it("GIVEN a host key with spaces around and between THEN `TYPE BASE64`", () => {
    assert.deepEqual(
      parseHostEntry({ name: "web1", ssh: "deploy@h", hostKey: `  ssh-ed25519   ${KEY} me  ` }),
      {
        ok: true,
        value: {
          name: "web1",
          target: { kind: "ssh", user: "deploy", address: "h", port: 22 },
          hostKey: ED25519,
        },
      },
    );
  });
  it("GIVEN a root with trailing slashes, in either form THEN without them", () => {
    const value = { name: "web1", target: { kind: "local" }, root: "/srv/app" };
    assert.deepEqual(parseHostEntry({ name: "web1", root: "/srv/app//" }), { ok: true, value });
    assert.deepEqual(parseHostEntry("web1 local root=/srv/app///"), { ok: true, value });
  });
  it("GIVEN an IPv6 address in brackets THEN the address without them (as SSH and known_hosts want it), and the port", () => {
    assert.deepEqual(parseHostEntry("web1 ssh://deploy@[2001:db8::1]:2222"), {
      ok: true,
      value: {
        name: "web1",
        target: { kind: "ssh", user: "deploy", address: "2001:db8::1", port: 2222 },
      },
    });
    const structured = parseHostEntry({ name: "web1", ssh: "deploy@[::1]", hostKey: ED25519 });
    assert.deepEqual(structured.ok && structured.value.target, {
      kind: "ssh",
      user: "deploy",
      address: "::1",
      port: 22,
    });
  });
});

describe("parseHostEntry: the shorthand's options", () => {
  const shorthand = (line: string) => problems(line).map((p) => p.replace(`-: "${line}": `, ""));
  it("GIVEN a target without ssh:// THEN the target's problem (the shorthand needs the scheme)", () => {
    assert.deepEqual(shorthand("web1 deploy@10.0.0.1"), [
      'target "deploy@10.0.0.1" must be "local" or "ssh://USER@ADDRESS[:PORT]"',
    ]);
  });
  it("GIVEN `port` without a value THEN port's problem, with the empty value", () => {
    assert.deepEqual(shorthand("web1 local port"), ['port="" is not a TCP port (1-65535)']);
  });
  it("GIVEN options that start with `=` THEN each is unknown (none is an empty key given twice)", () => {
    const known = "(known: port=N, root=/absolute/path, bind=IPv4)";
    assert.deepEqual(shorthand("web1 local =1 =2"), [
      `unknown option "=1" ${known}`,
      `unknown option "=2" ${known}`,
    ]);
  });
});

describe("parseHostKey (deprecated touchdeploy:hostKeys)", () => {
  it("GIVEN spaces around and between the fields THEN the same key", () => {
    assert.deepEqual(parseHostKey(`  web1   ssh-ed25519  ${KEY}  `), {
      ok: true,
      value: { hostName: "web1", publicKey: ED25519 },
    });
  });
  it("GIVEN a host name that is not one THEN it says so", () => {
    assert.deepEqual(parseHostKey(`Web1 ${ED25519}`), {
      ok: false,
      problems: [
        { message: `"Web1 ${ED25519}": "Web1" is not a host name from touchdeploy:hosts` },
      ],
    });
  });
  it("GIVEN a name alone, or a name and a type THEN what is missing, shown as empty", () => {
    assert.deepEqual(parseHostKey("web1"), {
      ok: false,
      problems: [
        { message: `"web1": key type "" is not one of ${TYPES}` },
        { message: '"web1": the key is not base64 (got "")' },
      ],
    });
    assert.deepEqual(parseHostKey("web1 ssh-ed25519"), {
      ok: false,
      problems: [{ message: '"web1 ssh-ed25519": the key is not base64 (got "")' }],
    });
  });
});

describe("parseKnownHostsLine", () => {
  it("GIVEN names, addresses, [host]:port and wildcards, with spaces around THEN the three fields", () => {
    for (const hosts of [
      "github.com",
      "git.example.com,10.0.0.5",
      "[git.example.com]:2222",
      "*.example.com",
    ]) {
      assert.deepEqual(parseKnownHostsLine(`  ${hosts}   ssh-rsa  ${KEY}  comment`), {
        ok: true,
        value: `${hosts} ssh-rsa ${KEY}`,
      });
    }
  });
  it("GIVEN a host pattern with other characters, before or after THEN the pattern's problem first", () => {
    for (const hosts of ["git(hub).com", "(x)github.com", "github.com(", "github.com;"]) {
      const line = `${hosts} ${ED25519}`;
      assert.deepEqual(parseKnownHostsLine(line), {
        ok: false,
        problems: [
          {
            message: `${JSON.stringify(line)}: ${JSON.stringify(hosts)} is not a known_hosts host pattern`,
          },
        ],
      });
    }
  });
  it("GIVEN a host alone, or a host and a type THEN what is missing, shown as empty", () => {
    assert.deepEqual(parseKnownHostsLine("github.com"), {
      ok: false,
      problems: [
        { message: `"github.com": key type "" is not one of ${TYPES}, ssh-rsa` },
        { message: '"github.com": the key is not base64 (got "")' },
      ],
    });
    assert.deepEqual(parseKnownHostsLine("github.com ssh-ed25519"), {
      ok: false,
      problems: [{ message: '"github.com ssh-ed25519": the key is not base64 (got "")' }],
    });
  });
});
