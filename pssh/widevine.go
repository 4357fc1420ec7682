package pssh

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// WidevineData is the Widevine header: the data of a Widevine pssh box, the
// WidevinePsshData protocol buffer. Only the fields a packager sets are
// kept; Parse skips the others. Field numbers, as Widevine's
// widevine_pssh_data.proto (and Shaka Packager's copy of it,
// packager/media/base/widevine_pssh_data.proto) define them:
//
//	repeated bytes key_id = 2;
//	optional string provider = 3;
//	optional bytes content_id = 4;
//	optional uint32 protection_scheme = 9;  // a FourCC: 'cenc', 'cbcs', ...
//
// Marshal writes them in field-number order, as protocol buffer
// serializers do, so that the bytes equal what Shaka Packager's
// WidevinePsshGenerator writes for the same key IDs and scheme.
type WidevineData struct {
	KeyIDs           [][16]byte
	Provider         string
	ContentID        []byte
	ProtectionScheme uint32 // 0: not written
}

// Protocol buffer wire types.
const (
	wireVarint = 0
	wire64     = 1
	wireBytes  = 2
	wire32     = 5
)

// Widevine header field numbers.
const (
	fieldKeyID            = 2
	fieldProvider         = 3
	fieldContentID        = 4
	fieldProtectionScheme = 9
)

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendField(b []byte, field, wire int, payload []byte) []byte {
	b = appendVarint(b, uint64(field<<3|wire))
	b = appendVarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// Marshal returns the protocol buffer's bytes.
func (w *WidevineData) Marshal() []byte {
	var b []byte
	for _, k := range w.KeyIDs {
		b = appendField(b, fieldKeyID, wireBytes, k[:])
	}
	if w.Provider != "" {
		b = appendField(b, fieldProvider, wireBytes, []byte(w.Provider))
	}
	if len(w.ContentID) > 0 {
		b = appendField(b, fieldContentID, wireBytes, w.ContentID)
	}
	if w.ProtectionScheme != 0 {
		b = appendVarint(b, fieldProtectionScheme<<3|wireVarint)
		b = appendVarint(b, uint64(w.ProtectionScheme))
	}
	return b
}

var errProto = errors.New("pssh: malformed Widevine header")

func readVarint(p []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(p) && i < 10; i++ {
		v |= uint64(p[i]&0x7f) << (7 * i)
		if p[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errProto
}

// ParseWidevineData reads a Widevine header. Fields it does not keep are
// skipped; a key ID that is not 16 bytes, a provider that is not UTF-8 or a
// malformed encoding is an error.
func ParseWidevineData(p []byte) (*WidevineData, error) {
	w := &WidevineData{}
	for len(p) > 0 {
		tag, n, err := readVarint(p)
		if err != nil {
			return nil, err
		}
		p = p[n:]
		field, wire := tag>>3, tag&7
		var payload []byte
		var value uint64
		switch wire {
		case wireVarint:
			if value, n, err = readVarint(p); err != nil {
				return nil, err
			}
			p = p[n:]
		case wireBytes:
			l, n, err := readVarint(p)
			if err != nil || l > uint64(len(p)-n) {
				return nil, errProto
			}
			payload, p = p[n:n+int(l)], p[n+int(l):]
		case wire64:
			if len(p) < 8 {
				return nil, errProto
			}
			p = p[8:]
		case wire32:
			if len(p) < 4 {
				return nil, errProto
			}
			p = p[4:]
		default:
			return nil, fmt.Errorf("%w: wire type %d", errProto, wire)
		}
		switch {
		case field == fieldKeyID && wire == wireBytes:
			if len(payload) != 16 {
				return nil, fmt.Errorf("%w: a key_id of %d bytes", errProto, len(payload))
			}
			w.KeyIDs = append(w.KeyIDs, [16]byte(payload))
		case field == fieldProvider && wire == wireBytes:
			if !utf8.Valid(payload) {
				return nil, fmt.Errorf("%w: provider is not UTF-8", errProto)
			}
			w.Provider = string(payload)
		case field == fieldContentID && wire == wireBytes:
			w.ContentID = append([]byte(nil), payload...)
		case field == fieldProtectionScheme && wire == wireVarint:
			if value > 0xffffffff {
				return nil, errProto
			}
			w.ProtectionScheme = uint32(value)
		}
	}
	return w, nil
}
