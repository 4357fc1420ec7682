// Package speke is the SPEKE v2 key provider of the admin listener: packagers
// and encoders (AWS Elemental MediaPackage, MediaConvert and MediaLive,
// Shaka Packager, and others that speak SPEKE or CPIX over HTTP) ask it for
// their content keys with POST /speke/v2, a CPIX 2.3 document (2.4 with
// SPEKE v2.1). It is one of the APIs mounted on the admin plane (package
// admin/plane), beside the native API (admin) and the AMS API
// (admin/amsapi).
//
// The contract is SPEKE v2.0 as AWS documents it ("SPEKE API v2", its
// "Customizations and constraints to the DASH-IF specification",
// "Encryption contract" and "Content key encryption" pages, and
// MediaPackage's "Implementing SPEKE v2.0"), checked against AWS's own
// verification suite (awslabs/speke-reference-server,
// spekev2_verification_testsuite):
//
//   - the request carries X-Speke-Version 2.0 (or 2.1) and the document
//     CPIX@version 2.3 (2.4) and CPIX@contentId; the answer carries
//     X-Speke-Version and X-Speke-User-Agent;
//   - the answer is the request document with what the key provider fills
//     in, every element and attribute kept (cpix.ParseTree and
//     Element.WriteDocument): each ContentKey gets Data/pskc:Secret with
//     its key (pskc:PlainValue, or encrypted to the DeliveryData's
//     recipients) and its explicitIV when it has one; each DRMSystem gets
//     the signaling it asks for (PSSH, ContentProtectionData,
//     HLSSignalingData for the media and master playlists,
//     SmoothStreamingProtectionHeaderData, URIExtXKey) for Widevine,
//     PlayReady, FairPlay, HLS AES-128 and ClearKey, with this server's
//     license and key URLs; signaling a system does not have is removed;
//   - refusals are plain text with the documented status and messages
//     ("Missing CPIX@contentId", "Unsupported SPEKE version", ...), never a
//     500 for a bad document.
//
// Keys from SPEKE are ordinary keys: a KID the store lacks is created with
// a random value (sealed, audited and replicated as any create), recorded
// under the request's contentId (its asset), key period and track type; a
// KID stored under that content is answered with the stored key, so the
// same request twice answers the same keys; a KID stored for another
// content is refused. A packager credential may be limited to content ID
// patterns (package credentials).
//
// Security invariants: key material leaves only in the answer to the
// credential that asked, never in a refusal, a log line or an audit
// record; it is cleared from memory (best effort) once written.
//
// speke imports the plane, keystore and the codecs (cpix, pssh, playready),
// and never a concrete store nor a sibling API.
package speke
