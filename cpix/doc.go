// Package cpix reads and writes the content keys of a DASH-IF CPIX
// (Content Protection Information Exchange Format) document.
//
// CPIX is the XML format in which packagers, DRM systems and key servers
// exchange content keys: a root element CPIX in the namespace
// "urn:dashif:org:cpix" holding a ContentKeyList of ContentKey elements,
// each with a kid attribute (a UUID), an optional explicitIV attribute
// (base64 of a 16-byte IV), an optional commonEncryptionScheme attribute and
// the key itself in Data/pskc:Secret/pskc:PlainValue, where pskc is the RFC
// 6030 namespace "urn:ietf:params:xml:ns:keyprov:pskc". The same document
// may also carry DRM signalling (DRMSystemList), key periods
// (ContentKeyPeriodList), usage rules (ContentKeyUsageRuleList), encryption
// material (DeliveryDataList), an update history and XML signatures.
//
// Versions. CPIX 2.0, 2.1, 2.2, 2.3 (and 2.3.1) and 2.4 all use the same
// namespace URI, "urn:dashif:org:cpix"; a version is not told by its
// namespace. From 2.3 on, the root carries a version attribute ("2.3",
// "2.4"); 2.0 to 2.2 documents have none. Read matches names by namespace
// URI and local name, never by prefix, so the default-namespace form
// (<CPIX xmlns="urn:dashif:org:cpix">) and any prefix
// (<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix">) read alike. It accepts no
// version attribute or one of "2.0", "2.1", "2.2", "2.3", "2.3.1" and
// "2.4", and refuses any other. Write produces CPIX 2.3 in the
// default-namespace form of the DASH-IF examples.
//
// What is read. Read takes CPIX@contentId, CPIX@version and, for every
// ContentKey, kid, explicitIV, commonEncryptionScheme and the PlainValue. It
// ignores DRMSystemList, ContentKeyPeriodList, ContentKeyUsageRuleList,
// UpdateHistoryItemList, ContentKey@dependsOnKey, ContentKey@contentId and
// unknown elements. It validates every ContentKey and reports all problems
// of a document at once in a *ReadError, each with a stable reason code, so
// a whole import batch can be refused with every bad entry named.
//
// Encrypted CPIX (encrypt.go). ReadWith, given the reader's private key as
// a recipient, reads documents whose keys are pskc:EncryptedValue: it
// unwraps the document key and the MAC key of the DeliveryData meant for
// it (RSA-OAEP), checks every ValueMAC (HMAC-SHA512) and only then
// decrypts the keys (AES-256-CBC). Without a recipient key an encrypted
// key is encrypted_value_unsupported. WriteEncrypted writes a document
// encrypted to recipients' certificates; the SPEKE key provider uses the
// same pieces (DocumentKey, DeliveryElements, EncryptedSecret).
//
// Signatures. A document holding a ds:Signature anywhere is refused
// (signature_not_verified): signatures are not verified, and a signed
// document is never read as if it were not signed.
//
// The tree (tree.go). ParseTree reads any document into elements that keep
// everything they were written with, and Element.WriteDocument writes it
// back: the SPEKE key provider answers a request with the request document
// filled in.
//
// Trust boundary: the input of Read is attacker-controlled. Read refuses
// documents larger than its limit (ErrTooLarge) without holding more than
// the limit in memory, refuses any DTD or other <!...> declaration (so no
// entity expansion of any kind), accepts only UTF-8, and never puts key
// material (PlainValue, explicitIV) into a Problem, an error or anything
// else meant for a person or a log: a Problem's Detail quotes no document
// text at all, and the only text it repeats is the kid, in Problem.KID.
// Key values are returned only in Document.Keys.
//
// This package is a reusable, dependency-free codec: it imports only the
// standard library and no package of this project, and knows nothing of
// HTTP or of how keys are stored.
package cpix
