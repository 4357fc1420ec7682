// Package auth verifies the short-lived ES256 tokens that video players
// present to the key-delivery server and says which content keys they grant.
//
// A token is a JWS compact JWT signed with the private key of a
// content-protection token certificate (EC P-256, typically created in Azure
// Key Vault). The server holds only the certificates: [LoadCertificates] reads
// them from PEM, DER or Key Vault certificate JSON files, a [Trust] keeps the
// current set and swaps it atomically when the files change or a remote
// [Source] brings other keys (an Azure Key Vault certificate followed version
// by version, package auth/keyvault; a JSON Web Key Set or an OpenID Connect
// issuer, package auth/jwks), and a [Verifier]
// checks a token against that set and returns its [Claims]: the keys it
// grants by KID ([Claims.Grants], decided from the token alone) and the
// contents whose keys it grants ([Claims.GrantsContent], which needs the
// key's record, so the caller decides it after its lookup). A key of an
// OpenID Connect issuer verifies only the tokens of that issuer; keys of
// certificate files, Key Vault and plain key sets verify the tokens of any
// configured issuer. A refusal is
// always an [*Error] whose [Reason] comes from a small, closed, documented set
// that is safe to show to clients, to log and to use as a metric label.
//
// # Trust boundary
//
// Everything in a token is attacker input until its signature has verified
// with a certificate from the trust set; claims are only validated after
// that. Only ES256 is accepted, whatever the token's header says, so
// algorithm-confusion tokens (alg "none", HS256 keyed with the certificate,
// RSA, other curves) are refused before any key is used. Tokens larger than
// [MaxTokenSize] are refused before any parsing. The verification path reads
// an immutable certificate set and never touches the filesystem or the
// network: remote sources are fetched in the background ([Trust.Refresh]),
// and a token that names an unknown key only prompts the next fetch. No part of a token ever appears in an error message or a log line
// written by this package: error details are fixed text, numbers (sizes,
// offsets, durations) and, at most, a name picked from a fixed list (a
// registered JOSE algorithm, a claim name of ours, a JSON kind), never bytes
// copied from the token.
//
// The package also signs tokens ([Signer]) and makes self-signed development
// certificates ([GenerateDevCertificate]) so that the admin command-line
// client, tests and the load generator need not import a JWT library.
//
// # Dependencies
//
// auth imports no package of this project and knows nothing of HTTP. The JWT
// library it uses (golang-jwt) stays inside it, for signing: no exported
// identifier mentions its types. Verification reads the token itself (see
// token.go): the header and the claims are decoded by exact names with
// go-json-experiment/json's token decoder, a name given twice or a case
// variant of a name this package reads refuses the token, dates are
// numbers only, and the signature is checked with crypto/ecdsa, so that a
// token means the same thing here as to any other JWT reader. The client
// libraries of the remote trust sources (the Azure SDK, the JWKS library)
// stay in the source packages, which import auth, never the other way round.
package auth
