package playready

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// Algorithms of a PlayReady header's KID (the ALGID).
const (
	AESCTR = "AESCTR" // CENC 'cenc' and 'cens'
	AESCBC = "AESCBC" // CENC 'cbcs' and 'cbc1' (header 4.3 and later)
)

// HeaderKey is one key a PlayReady header names.
type HeaderKey struct {
	// KID in RFC 9562 byte order (the header carries it as a GUID).
	KID [16]byte
	// Key is the content key, for the CHECKSUM of an AESCTR key; a zero
	// Key writes no checksum (the attribute is optional).
	Key [16]byte
}

// Header describes a PlayReady header (WRMHEADER) to write.
type Header struct {
	// Keys are the keys the header names, at least one.
	Keys []HeaderKey
	// AlgID is AESCTR or AESCBC.
	AlgID string
	// LAURL is the license acquisition URL (LA_URL), absolute; "" writes
	// none.
	LAURL string
}

// XML returns the PlayReady header as XML text, in the form the PlayReady
// Header Specification (learn.microsoft.com, "PlayReady Header
// Specification"; MicrosoftDocs/PlayReady,
// Docs/Specifications/playready-header-specification.md) gives:
//
//   - one AESCTR key: version 4.0.0.0, which every PlayReady client reads
//     (version support matrix, §3.1): PROTECTINFO with KEYLEN 16 and ALGID
//     AESCTR, then KID (base64 of the little-endian GUID), CHECKSUM (§5, the
//     first 8 bytes of AES-ECB(key, GUID)) and LA_URL. This is byte for byte
//     what Shaka Packager writes (packager/media/base/
//     playready_pssh_generator.cc, kPlayHeaderObject_4_0) with the LA_URL as
//     its extra header data.
//   - AESCBC keys, or several keys: version 4.3.0.0 (§3.3), PROTECTINFO/
//     KIDS/KID with the attributes in alphabetical order (§3.2.5): ALGID,
//     CHECKSUM for AESCTR keys only ("When the ALGID attribute is set to
//     AESCBC, the CHECKSUM attribute must not be included"), VALUE; every
//     KID element explicitly closed (§3.2.3); then LA_URL. PlayReady 4.0
//     clients and later read it; only 4.3 can carry AESCBC keys.
//
// The XML is canonical in the sense of §3.2.1: no white space between
// elements, namespace attribute first.
func (h *Header) XML() (string, error) {
	if len(h.Keys) == 0 {
		return "", errors.New("playready: a header names at least one key")
	}
	if h.AlgID != AESCTR && h.AlgID != AESCBC {
		return "", fmt.Errorf("playready: ALGID %q, want AESCTR or AESCBC", h.AlgID)
	}
	if strings.ContainsAny(h.LAURL, "<>&\"") || (h.LAURL != "" && !strings.Contains(h.LAURL, "://")) {
		return "", errors.New("playready: LA_URL must be an absolute URL without <, >, & or \"")
	}
	var b strings.Builder
	b.WriteString(`<WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="`)
	if h.AlgID == AESCTR && len(h.Keys) == 1 {
		k := h.Keys[0]
		g := GUID(k.KID)
		b.WriteString(`4.0.0.0"><DATA><PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID></PROTECTINFO><KID>`)
		b.WriteString(base64.StdEncoding.EncodeToString(g[:]))
		b.WriteString(`</KID>`)
		if k.Key != ([16]byte{}) {
			b.WriteString(`<CHECKSUM>` + Checksum(k.Key, k.KID) + `</CHECKSUM>`)
		}
	} else {
		b.WriteString(`4.3.0.0"><DATA><PROTECTINFO><KIDS>`)
		for _, k := range h.Keys {
			g := GUID(k.KID)
			b.WriteString(`<KID ALGID="` + h.AlgID + `"`)
			if h.AlgID == AESCTR && k.Key != ([16]byte{}) {
				b.WriteString(` CHECKSUM="` + Checksum(k.Key, k.KID) + `"`)
			}
			b.WriteString(` VALUE="` + base64.StdEncoding.EncodeToString(g[:]) + `"></KID>`)
		}
		b.WriteString(`</KIDS></PROTECTINFO>`)
	}
	if h.LAURL != "" {
		b.WriteString(`<LA_URL>` + h.LAURL + `</LA_URL>`)
	}
	b.WriteString(`</DATA></WRMHEADER>`)
	return b.String(), nil
}

// MaxObjectSize is the largest PlayReady Object the specification allows
// (§2: "should not exceed 15 kilobytes").
const MaxObjectSize = 15 << 10

// Object returns the PlayReady Object (PRO) carrying the header: the data
// of a PlayReady pssh box, the inner value of DASH's mspr:pro, of HLS's
// KEYFORMAT="com.microsoft.playready" data URI and (base64) of Smooth
// Streaming's ProtectionHeader. Layout (§2, little-endian): Length (DWORD,
// the whole object), Record Count (WORD, 1), one record: Record Type
// (WORD, 1: a PlayReady header), Record Length (WORD), the header in
// UTF-16LE (§3).
func (h *Header) Object() ([]byte, error) {
	x, err := h.XML()
	if err != nil {
		return nil, err
	}
	u := utf16.Encode([]rune(x))
	recLen := 2 * len(u)
	total := 4 + 2 + 2 + 2 + recLen
	if total > MaxObjectSize {
		return nil, fmt.Errorf("playready: the PlayReady Object would be %d bytes, more than %d", total, MaxObjectSize)
	}
	out := make([]byte, 0, total)
	out = binary.LittleEndian.AppendUint32(out, uint32(total))
	out = binary.LittleEndian.AppendUint16(out, 1)
	out = binary.LittleEndian.AppendUint16(out, 1)
	out = binary.LittleEndian.AppendUint16(out, uint16(recLen))
	for _, c := range u {
		out = binary.LittleEndian.AppendUint16(out, c)
	}
	return out, nil
}

// ObjectHeader returns the header XML of the first PlayReady header record
// of a PlayReady Object, for tests and for reading objects back.
func ObjectHeader(pro []byte) (string, error) {
	if len(pro) < 6 || int(binary.LittleEndian.Uint32(pro)) != len(pro) {
		return "", errors.New("playready: malformed PlayReady Object: its length does not match")
	}
	n := int(binary.LittleEndian.Uint16(pro[4:]))
	p := pro[6:]
	for i := 0; i < n; i++ {
		if len(p) < 4 {
			return "", errors.New("playready: malformed PlayReady Object: a record is cut off")
		}
		typ, l := binary.LittleEndian.Uint16(p), int(binary.LittleEndian.Uint16(p[2:]))
		if l > len(p)-4 || l%2 != 0 {
			return "", errors.New("playready: malformed PlayReady Object: a record's length does not fit")
		}
		if typ == 1 {
			u := make([]uint16, l/2)
			for j := range u {
				u[j] = binary.LittleEndian.Uint16(p[4+2*j:])
			}
			return string(utf16.Decode(u)), nil
		}
		p = p[4+l:]
	}
	return "", errors.New("playready: the PlayReady Object holds no PlayReady header")
}
