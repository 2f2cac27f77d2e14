/**
 * A throwaway certificate authority and a server certificate signed by it,
 * made with openssl, for tests that serve or dial TLS. Both last two days:
 * long enough for a test, short enough that a leaked one is harmless.
 *
 * @example
 * ```ts ignore
 * const dir = await Deno.makeTempDir();
 * const certs = await makeCertificates(dir, ["localhost", "127.0.0.1"]);
 * await using server = Deno.serve({ cert: certs.cert, key: certs.key, port: 0 }, handler);
 * using client = Deno.createHttpClient({ caCerts: [certs.ca] });
 * ```
 *
 * @module
 */
import { join } from "node:path";

/** The files {@link makeCertificates} wrote, and their PEM text. */
export interface TestCertificates {
  /** Path of the CA's certificate (`ca.pem`). */
  caFile: string;
  /** Path of the server's certificate (`cert.pem`). */
  certFile: string;
  /** Path of the server's private key (`key.pem`). */
  keyFile: string;
  /** The CA's certificate, PEM: what a client trusts. */
  ca: string;
  /** The server's certificate, PEM. */
  cert: string;
  /** The server's private key, PEM. */
  key: string;
}

/** An IPv4 or IPv6 address rather than a DNS name (a subjectAltName tells them apart). */
const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:.]*)$/i;

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Writes a CA (`ca.pem`, `ca.key`) and a server certificate for `names`
 * (DNS names and IP addresses; the first is also its CN) signed by it
 * (`cert.pem`, `key.pem`) into `dir`, which the caller makes and removes.
 */
export async function makeCertificates(dir: string, names: string[]): Promise<TestCertificates> {
  if (names.length === 0) throw new RangeError("Cannot make a certificate: no names given");
  // EC keys: much faster to make than RSA ones.
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(dir, [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=chat test CA",
  ]);
  await openssl(dir, [
    "req",
    ...ec,
    "-keyout",
    "key.pem",
    "-out",
    "leaf.csr",
    "-subj",
    `/CN=${names[0]}`,
  ]);
  const alt = names.map((n) => IP.test(n) ? `IP:${n}` : `DNS:${n}`).join(",");
  // A leaf, not a CA: Deno does not take a CA certificate as a server's own.
  await Deno.writeTextFile(
    join(dir, "ext.cnf"),
    `subjectAltName=${alt}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n`,
  );
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "cert.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  ]);
  const caFile = join(dir, "ca.pem");
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  return {
    caFile,
    certFile,
    keyFile,
    ca: await Deno.readTextFile(caFile),
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
  };
}
