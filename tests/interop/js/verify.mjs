// Verify a signer bundle with unmodified @sigstore/verify, default thresholds.
// usage: node verify.mjs <trusted_root.json> <bundle.json> <artifact file> <identity> <issuer>
// Exits 0 when verified, 1 (and prints why) otherwise.
import { readFileSync } from "node:fs";
import { bundleFromJSON } from "@sigstore/bundle";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import { Verifier, toSignedEntity, toTrustMaterial } from "@sigstore/verify";

const [rootPath, bundlePath, artifactPath, identity, issuer] = process.argv.slice(2);
try {
  const root = TrustedRoot.fromJSON(JSON.parse(readFileSync(rootPath, "utf8")));
  const bundle = bundleFromJSON(JSON.parse(readFileSync(bundlePath, "utf8")));
  const verifier = new Verifier(toTrustMaterial(root));
  const entity = toSignedEntity(bundle, readFileSync(artifactPath));
  const signer = verifier.verify(entity, {
    subjectAlternativeName: identity,
    extensions: { issuer },
  });
  console.log(JSON.stringify({ verified: true, identity: signer.identity?.subjectAlternativeName }));
} catch (error) {
  console.log(JSON.stringify({ verified: false, error: `${error.code ?? ""} ${error.message}` }));
  process.exit(1);
}
