/**
 * Which push endpoints the server will send to: a subscription's endpoint is
 * a URL a user hands the server, so without these checks a user could make
 * the server send requests into its own network (SSRF).
 *
 * Two layers: {@link checkEndpoint} refuses a URL by its form when it is
 * stored (https only, port 443, no user info, no IP literal or well-known
 * local name outside the public internet); {@link addressesProblem} refuses
 * the addresses a name resolves to, at send time, so a public name that
 * resolves to 127.0.0.1 (DNS rebinding) is not reached. The connection
 * itself goes to an address that was checked (see `pinned_proxy.ts`).
 *
 * @module
 */
import { lookup } from "node:dns/promises";

/** Longest endpoint accepted (the protocol's limit too). */
export const MAX_ENDPOINT_LENGTH = 1024;

/** Options for {@link checkEndpoint}. */
export interface CheckEndpointOptions {
  /** `--unsafe-push-endpoints`: allow http, any port, and private or loopback hosts (tests only). @default {false} */
  unsafe?: boolean;
}

/** Host names that never lead to the public internet (RFC 6761, 6762, 8375 and common private suffixes). */
const LOCAL_SUFFIXES = [
  "localhost",
  "local",
  "internal",
  "home.arpa",
  "lan",
  "localdomain",
  "intranet",
];

/**
 * Why `url` is not an acceptable push endpoint, or null when it is.
 *
 * @example
 * ```ts
 * import { checkEndpoint } from "./endpoint.ts";
 * checkEndpoint("https://fcm.googleapis.com/fcm/send/abc", {}); // null
 * checkEndpoint("https://127.0.0.1/x", {}); // "the endpoint's host is a loopback address"
 * ```
 */
export function checkEndpoint(url: string, opts: CheckEndpointOptions = {}): string | null {
  if (typeof url !== "string" || url.length === 0) return "the endpoint is empty";
  if (url.length > MAX_ENDPOINT_LENGTH) {
    return `the endpoint is longer than ${MAX_ENDPOINT_LENGTH} characters`;
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "the endpoint is not a URL";
  }
  const unsafe = opts.unsafe ?? false;
  if (u.protocol !== "https:" && !(unsafe && u.protocol === "http:")) {
    return "the endpoint must be an https URL";
  }
  if (u.username !== "" || u.password !== "") {
    return "the endpoint must not hold a user name or password";
  }
  if (unsafe) return null;
  if (u.port !== "") return "the endpoint must use the https port (443)";
  const host = u.hostname;
  const ip = hostAddress(host);
  if (ip !== null) {
    const why = addressProblem(ip);
    return why ? `the endpoint's host is ${why}` : null;
  }
  const name = host.replace(/\.$/, "").toLowerCase();
  for (const suffix of LOCAL_SUFFIXES) {
    if (name === suffix || name.endsWith("." + suffix)) {
      return `the endpoint's host is a local name (".${suffix}")`;
    }
  }
  // A single label is completed by the resolver's search domains: a name in the local network.
  if (!name.includes(".")) return "the endpoint's host must be a full domain name";
  return null;
}

/** The address a URL's `hostname` names when it is an IP literal (brackets removed), else null. */
function hostAddress(hostname: string): string | null {
  if (hostname.startsWith("[") && hostname.endsWith("]")) return hostname.slice(1, -1);
  // The URL parser has already turned 2130706433, 0x7f.1 and 0177.0.0.1 into dotted decimal.
  return parseIPv4(hostname) ? hostname : null;
}

/**
 * Why `address` (an IPv4 or IPv6 address as text) is not on the public
 * internet, or null when it is: loopback, private, CGNAT, link-local,
 * unique-local, multicast, unspecified, documentation, reserved, and
 * IPv6 forms that embed a private IPv4 address (mapped, NAT64, 6to4).
 */
export function addressProblem(address: string): string | null {
  const v4 = parseIPv4(address);
  if (v4) return ipv4Problem(v4);
  const v6 = parseIPv6(address.replace(/%.*$/, ""));
  if (!v6) return "not an IP address";
  return ipv6Problem(v6);
}

/** Why the set of addresses a name resolved to may not be reached, or null when all are public. */
export function addressesProblem(addresses: readonly string[]): string | null {
  if (addresses.length === 0) return "the endpoint's host has no address";
  for (const a of addresses) {
    const why = addressProblem(a);
    if (why) return `the endpoint's host resolves to ${why} (${a})`;
  }
  return null;
}

/** Resolves `hostname` the way a connection would (the system resolver, hosts file included). */
export async function resolveHost(hostname: string): Promise<string[]> {
  const literal = hostAddress(hostname);
  if (literal !== null) return [literal];
  const found = await lookup(hostname.replace(/\.$/, ""), { all: true, verbatim: true });
  return found.map((a) => a.address);
}

function ipv4Problem([a, b, c]: number[]): string | null {
  if (a === 0) return "an unspecified address";
  if (a === 127) return "a loopback address";
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) {
    return "a private address";
  }
  if (a === 100 && b >= 64 && b <= 127) return "a shared (CGNAT) address";
  if (a === 169 && b === 254) return "a link-local address";
  if (a >= 224 && a <= 239) return "a multicast address";
  if (a >= 240) return "a reserved address";
  if (a === 192 && b === 0 && (c === 0 || c === 2)) return "a reserved address";
  if ((a === 198 && b === 51 && c === 100) || (a === 203 && b === 0 && c === 113)) {
    return "a reserved address";
  }
  if (a === 198 && (b === 18 || b === 19)) return "a reserved address";
  return null;
}

function ipv6Problem(w: number[]): string | null {
  const zeroPrefix = (n: number) => w.slice(0, n).every((x) => x === 0);
  if (zeroPrefix(8)) return "an unspecified address";
  if (zeroPrefix(7) && w[7] === 1) return "a loopback address";
  // ::ffff:a.b.c.d (mapped) and ::ffff:0:a.b.c.d (translated) carry an IPv4 address.
  if (zeroPrefix(5) && w[5] === 0xffff) return ipv4Problem(embedded(w[6], w[7]));
  if (zeroPrefix(4) && w[4] === 0xffff && w[5] === 0) return ipv4Problem(embedded(w[6], w[7]));
  if (w[0] === 0x64 && w[1] === 0xff9b) {
    // NAT64: 64:ff9b::/96 maps to the embedded IPv4 address; 64:ff9b:1::/48 is local use.
    return w[2] === 0 && w.slice(3, 6).every((x) => x === 0)
      ? ipv4Problem(embedded(w[6], w[7]))
      : "a local NAT64 address";
  }
  if (w[0] === 0x2002) return ipv4Problem(embedded(w[1], w[2])); // 6to4
  if ((w[0] & 0xfe00) === 0xfc00) return "a unique-local address";
  if ((w[0] & 0xffc0) === 0xfe80) return "a link-local address";
  if ((w[0] & 0xffc0) === 0xfec0) return "a site-local address";
  if ((w[0] & 0xff00) === 0xff00) return "a multicast address";
  if (w[0] === 0x2001 && w[1] === 0x0db8) return "a reserved address";
  if (w[0] === 0x2001 && w[1] === 0) return "a Teredo address";
  if (w[0] === 0x100 && w.slice(1, 4).every((x) => x === 0)) {
    return "a reserved address"; // 100::/64, discard-only
  }
  // Everything else outside global unicast (2000::/3), e.g. the deprecated ::a.b.c.d.
  if ((w[0] & 0xe000) !== 0x2000) return "a reserved address";
  return null;
}

function embedded(hi: number, lo: number): number[] {
  return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff];
}

/** Dotted-decimal IPv4 (the only form a URL parser or resolver gives) to its four bytes. */
function parseIPv4(text: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : null;
}

/** IPv6 text (with `::` and an optional trailing dotted IPv4) to its eight 16-bit words. */
function parseIPv6(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;
  let s = text;
  const tail: number[] = [];
  if (s.includes(".")) {
    const lastColon = s.lastIndexOf(":");
    const v4 = lastColon === -1 ? null : parseIPv4(s.slice(lastColon + 1));
    if (!v4) return null;
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    s = s.slice(0, lastColon + 1);
    if (!s.endsWith("::")) s = s.slice(0, -1);
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const rest = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  const given = head.length + rest.length + tail.length;
  if (halves.length === 1 ? given !== 8 : given > 7) return null;
  const out: number[] = [];
  for (const h of [...head, ...Array(8 - given).fill("0"), ...rest]) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(h)) return null;
    out.push(parseInt(h, 16));
  }
  out.push(...tail);
  return out;
}
