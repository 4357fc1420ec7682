package cpix

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Namespace URIs. CPIX 2.0 to 2.4 share NamespaceCPIX.
const (
	NamespaceCPIX   = "urn:dashif:org:cpix"
	NamespacePSKC   = "urn:ietf:params:xml:ns:keyprov:pskc"
	NamespaceDSig   = "http://www.w3.org/2000/09/xmldsig#"
	NamespaceXMLEnc = "http://www.w3.org/2001/04/xmlenc#"
)

// WriteVersion is the CPIX@version that Write puts on every document.
const WriteVersion = "2.3"

// supportedVersions lists the CPIX@version values Read accepts. A document
// without a version attribute (CPIX 2.0 to 2.2) is accepted too.
var supportedVersions = []string{"2.0", "2.1", "2.2", "2.3", "2.3.1", "2.4"}

// schemes lists the ContentKey@commonEncryptionScheme values Read and Write
// accept: the four ISO/IEC 23001-7 protection schemes of the CPIX 2.3 schema
// (cenc, cbc1, cens, cbcs) and the HLS encryption methods that CPIX 2.4
// allows as well (AES-128, SAMPLE-AES, SAMPLE-AES-CTR).
var schemes = []string{"cenc", "cbc1", "cens", "cbcs", "AES-128", "SAMPLE-AES", "SAMPLE-AES-CTR"}

// KeySize is the length in bytes of a content key and of an explicit IV.
const KeySize = 16

// Key is one content key of a CPIX document.
type Key struct {
	// KID is ContentKey@kid, the UUID's 16 bytes in RFC 9562 byte order.
	KID [16]byte
	// Value is Data/pskc:Secret/pskc:PlainValue, decoded: always 16 bytes
	// when returned by Read.
	Value []byte
	// IV is ContentKey@explicitIV, decoded; nil when absent, else 16 bytes.
	IV []byte
	// CommonEncryptionScheme is ContentKey@commonEncryptionScheme ("cenc",
	// "cbcs", ...), "" when absent.
	CommonEncryptionScheme string
}

// Document is what Read takes from, and Write puts into, a CPIX document.
type Document struct {
	// ContentID is CPIX@contentId, "" when absent.
	ContentID string
	// Version is CPIX@version as read, "" when absent. Write ignores it and
	// always writes WriteVersion.
	Version string
	// Keys are the content keys in document order.
	Keys []Key
}

// ErrTooLarge is returned by Read for a document longer than its limit.
var ErrTooLarge = errors.New("cpix: document too large")

// Problem reasons: a stable, closed set of codes.
const (
	// Document level (Problem.Index == -1).
	ReasonMalformedXML        = "malformed_xml"        // not well-formed XML
	ReasonDTDNotAllowed       = "dtd_not_allowed"      // a DOCTYPE or other <!...> declaration
	ReasonUnsupportedEncoding = "unsupported_encoding" // an encoding other than UTF-8 declared
	ReasonNotCPIX             = "not_cpix"             // the root is not {urn:dashif:org:cpix}CPIX
	ReasonUnsupportedVersion  = "unsupported_version"  // CPIX@version not 2.0, 2.1, 2.2, 2.3, 2.3.1 or 2.4
	ReasonUnexpectedElement   = "unexpected_element"   // an element the schema does not allow where it is
	ReasonInvalidStructure    = "invalid_structure"    // an element repeated that may appear once
	ReasonNestingTooDeep      = "nesting_too_deep"     // elements nested deeper than MaxDepth
	ReasonTooManyKeys         = "too_many_keys"        // more ContentKeys than the reader's limit
	ReasonTooManyNodes        = "too_many_nodes"       // a part read whole holds more than MaxTreeNodes nodes

	// Either level.
	ReasonDuplicateAttribute = "duplicate_attribute"

	// ContentKey level.
	ReasonMissingKID                = "missing_kid"
	ReasonInvalidKID                = "invalid_kid"
	ReasonDuplicateKID              = "duplicate_kid"
	ReasonMissingValue              = "missing_value"
	ReasonEncryptedValueUnsupported = "encrypted_value_unsupported"
	ReasonInvalidBase64             = "invalid_base64"
	ReasonInvalidKeyLength          = "invalid_key_length"
	ReasonInvalidIVLength           = "invalid_iv_length"
	ReasonInvalidScheme             = "invalid_scheme"

	// Encrypted documents (ReadWith with a Recipient), and signatures.
	ReasonSignatureNotVerified  = "signature_not_verified"  // document level: a ds:Signature
	ReasonNotRecipient          = "not_recipient"           // document level: no DeliveryData is for this recipient
	ReasonInvalidDeliveryData   = "invalid_delivery_data"   // document level: a DocumentKey or MACMethod that cannot be read
	ReasonMissingMAC            = "missing_mac"             // no MACMethod, or a key without ValueMAC
	ReasonMACMismatch           = "mac_mismatch"            // a ValueMAC that does not match
	ReasonInvalidEncryptedValue = "invalid_encrypted_value" // an EncryptedValue that cannot be read
	ReasonUnsupportedAlgorithm  = "unsupported_algorithm"   // an algorithm other than those of CPIX
	ReasonDecryptionFailed      = "decryption_failed"       // a value that does not decrypt
)

// Problem is one thing wrong with a document or one of its ContentKeys.
type Problem struct {
	// Index is the 0-based position of the ContentKey in the document, or
	// -1 for a problem of the document as a whole.
	Index int
	// KID is ContentKey@kid as written, cut to 64 characters; "" when absent
	// or for a document-level problem.
	KID string
	// Reason is a stable code, one of the Reason constants.
	Reason string
	// Detail explains the problem to a person. It never contains key
	// material (no PlainValue, no explicitIV).
	Detail string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Index < 0 {
		b.WriteString("document")
	} else {
		fmt.Fprintf(&b, "ContentKey %d", p.Index)
		if p.KID != "" {
			fmt.Fprintf(&b, " (kid %q)", p.KID)
		}
	}
	b.WriteString(": ")
	b.WriteString(p.Reason)
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// ReadError is returned by Read for a document it refuses because of its
// content. It lists the first MaxProblems problems found, in document order,
// and counts them all.
type ReadError struct {
	Problems []Problem
	// Count is the number of problems found, listed or not.
	Count int
}

// MaxProblems is how many problems a ReadError lists; the others are only
// counted, so a document of many bad keys costs the reader no more memory
// than a document of a hundred.
const MaxProblems = 100

// MaxDepth is how deep elements may nest (the root is at depth 1). A CPIX
// document is about 8 deep (a pskc:PlainValue is at 6; ds:Signature and
// DRM system data a few more); encoding/xml keeps a record of every open
// element, so an unbounded depth would let a document of nested elements
// take memory in proportion to its size (9 million levels took 1.5 GiB).
const MaxDepth = 64

// maxErrorProblems bounds how many problems Error spells out.
const maxErrorProblems = 10

func (e *ReadError) Error() string {
	var b strings.Builder
	b.WriteString("cpix: invalid document")
	n := max(e.Count, len(e.Problems))
	switch n {
	case 0:
		return b.String()
	case 1:
		b.WriteString(": ")
	default:
		fmt.Fprintf(&b, ": %d problems: ", n)
	}
	for i, p := range e.Problems {
		if i == maxErrorProblems {
			fmt.Fprintf(&b, "; and %d more", n-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// parseKID parses a UUID in canonical 8-4-4-4-12 form, hex digits of either
// case. Braces, URNs and unhyphenated forms are not CPIX and are refused.
func parseKID(s string) ([16]byte, bool) {
	var id [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	var buf [32]byte
	n := 0
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		buf[n] = s[i]
		n++
	}
	if _, err := hex.Decode(id[:], buf[:]); err != nil {
		return [16]byte{}, false
	}
	return id, true
}

// formatKID writes id in canonical lower-case hyphenated form.
func formatKID(id [16]byte) string {
	const digits = "0123456789abcdef"
	var b [36]byte
	n := 0
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[n] = '-'
			n++
		}
		b[n] = digits[c>>4]
		b[n+1] = digits[c&0x0f]
		n += 2
	}
	return string(b[:])
}

// errNonCanonical reports base64 that decodes but is not the standard,
// padded encoding of its bytes.
var errNonCanonical = errors.New("non-canonical base64")

// decodeBase64 decodes standard, padded base64 and insists that s is
// exactly the encoding of the result: no line breaks or spaces inside, no
// missing padding, no stray bits in the last character. The error never
// quotes s.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b2, err2 := base64.RawStdEncoding.DecodeString(s); err2 == nil && len(b2) > 0 {
			return nil, errNonCanonical
		}
		return nil, errors.New("not valid base64")
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errNonCanonical
	}
	return b, nil
}

// trimXMLSpace removes the XML white space characters (space, tab, CR, LF)
// from both ends of s, as the xs:base64Binary whiteSpace facet does.
func trimXMLSpace(s string) string {
	return strings.Trim(s, " \t\r\n")
}

func isXMLSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// clip cuts s to at most n characters for use in a message.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
