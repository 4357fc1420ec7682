// Package tlsserve is how keydelivery's listeners speak TLS: the server
// certificate read from PEM files (validated before anything starts, and
// reloaded on change or on demand, swapped atomically so that new handshakes
// get the new certificate while open connections keep theirs), certificates
// obtained and renewed automatically from an ACME certificate authority
// (RFC 8555, through certmagic and acmez), the client certificate
// authorities of mutual TLS, the one TLS configuration every listener uses
// (TLS 1.2 and 1.3 only, Go's default cipher suites and curves, HTTP/2 and
// HTTP/1.1 by ALPN), and the local certificate authority of development
// mode and of the tests.
//
// # Trust boundary
//
// Certificate and key files are configuration: whoever can write them can
// impersonate the server, exactly as with the token certificates. A file
// that does not parse, a key that does not match its certificate, an
// expired certificate or a chain out of order is refused at startup (and by
// --check-config); a reload that fails keeps the certificate in use and says
// why. The ACME storage may be shared (Redis): every value this package
// stores through a Blobs store is sealed first with the Seal function its
// caller gives, and opened with Open, so a store that is not trusted with
// the private keys never sees one in the clear. Private keys are never
// logged.
//
// certmagic, acmez and zap are used in this package only; none of their
// types appear in its exported API. The package imports no other package
// of keydelivery.
package tlsserve
