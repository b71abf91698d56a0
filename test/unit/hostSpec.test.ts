// Pure parsing of touchdeploy:hosts and touchdeploy:hostKeys entries (no mocks).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseHostEntry, parseHostKey } from "../../components/hostSpec";

const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";

describe("parseHostSpec", () => {
  const valid: [string, unknown][] = [
    ["local local", { name: "local", target: { kind: "local" } }],
    [
      "web1 ssh://deploy@10.0.0.11",
      { name: "web1", target: { kind: "ssh", user: "deploy", address: "10.0.0.11", port: 22 } },
    ],
    [
      "  web-2   ssh://td@host.example.com:2222 port=8001 root=/srv/a bind=127.0.0.1 ",
      {
        name: "web-2",
        target: { kind: "ssh", user: "td", address: "host.example.com", port: 2222 },
        port: 8001,
        root: "/srv/a",
        bindAddress: "127.0.0.1",
      },
    ],
  ];
  for (const [entry, expected] of valid) {
    it(`GIVEN ${JSON.stringify(entry)} THEN it parses`, () => {
      assert.deepEqual(parseHostEntry(entry), { ok: true, value: expected });
    });
  }

  const invalid: [string, string[]][] = [
    [
      "",
      [
        "host name \"\" must be 1-32 lowercase letters, digits or '-' (not at the ends)",
        'target "" must be "local" or "ssh://USER@ADDRESS[:PORT]"',
      ],
    ],
    [
      "Web1 local",
      ["host name \"Web1\" must be 1-32 lowercase letters, digits or '-' (not at the ends)"],
    ],
    [
      "web1 ssh://10.0.0.1",
      ['target "ssh://10.0.0.1" must be "local" or "ssh://USER@ADDRESS[:PORT]"'],
    ],
    [
      "web1 ssh://u@h:70000",
      ['target "ssh://u@h:70000" must be "local" or "ssh://USER@ADDRESS[:PORT]"'],
    ],
    [
      "web1 ssh://u@h;reboot",
      ['target "ssh://u@h;reboot" must be "local" or "ssh://USER@ADDRESS[:PORT]"'],
    ],
    ["web1 local port=0", ['port="0" is not a TCP port (1-65535)']],
    ["web1 local root=srv/app", ['root="srv/app" must be an absolute path (starting with "/")']],
    ["web1 local root=/srv/../etc", ['root="/srv/../etc" must not contain "." or ".." components']],
    ["web1 local bind=localhost", ['bind="localhost" must be an IPv4 address such as 0.0.0.0']],
    ["web1 local port=1 port=2", ['option "port" is given twice']],
    [
      "web1 local colour=blue",
      ['unknown option "colour=blue" (known: port=N, root=/absolute/path, bind=IPv4)'],
    ],
  ];
  for (const [entry, problems] of invalid) {
    it(`GIVEN ${JSON.stringify(entry)} THEN it names every problem`, () => {
      assert.deepEqual(parseHostEntry(entry), {
        ok: false,
        problems: problems.map((m) => ({ message: `${JSON.stringify(entry)}: ${m}` })),
      });
    });
  }
});

describe("parseHostKey", () => {
  it("GIVEN a known_hosts-style line THEN it keeps TYPE BASE64 for command's hostKey", () => {
    assert.deepEqual(parseHostKey(`web1 ssh-ed25519 ${KEY} comment`), {
      ok: true,
      value: { hostName: "web1", publicKey: `ssh-ed25519 ${KEY}` },
    });
  });
  it("GIVEN a wrong key type and a non-base64 key THEN both are reported", () => {
    assert.deepEqual(parseHostKey("web1 ssh-dss $(reboot)"), {
      ok: false,
      problems: [
        {
          message:
            '"web1 ssh-dss $(reboot)": key type "ssh-dss" is not one of ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521',
        },
        { message: '"web1 ssh-dss $(reboot)": the key is not base64 (got "$(reboot)")' },
      ],
    });
  });
});
