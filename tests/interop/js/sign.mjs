// Sign a file with unmodified sigstore-js (npm `sigstore`), every service at signer.
// usage: node sign.mjs <fulcio url> <rekor url> <tsa url> <token file> <artifact> <bundle out>
// Exits 0 when the bundle is written, 1 (and prints why) otherwise.
import { readFileSync, writeFileSync } from "node:fs";
import { sign } from "sigstore";

const [fulcioURL, rekorURL, tsaServerURL, tokenPath, artifactPath, outPath] =
  process.argv.slice(2);
try {
  const bundle = await sign(readFileSync(artifactPath), {
    fulcioURL, rekorURL, tsaServerURL,
    identityToken: readFileSync(tokenPath, "utf8").trim(),
  });
  writeFileSync(outPath, JSON.stringify(bundle));
  console.log(JSON.stringify({ signed: true }));
} catch (error) {
  console.log(JSON.stringify({ signed: false, error: `${error.code ?? ""} ${error.message}`,
                               cause: `${error.cause?.message ?? ""}` }));
  process.exit(1);
}
