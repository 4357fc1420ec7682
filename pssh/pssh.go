// Package pssh writes and reads the Protection System Specific Header box
// of ISO/IEC 23001-7 (Common Encryption) §8.1, versions 0 and 1, and the
// Widevine header that a Widevine PSSH box carries as its data (the
// WidevinePsshData protocol buffer, whose few fields are written by hand).
//
// It is a dependency-free codec: it imports only the standard library and
// no package of this project. Box layout:
//
//	size(4) 'pssh' version(1) flags(3) SystemID(16)
//	[version 1: KID_count(4) KID(16)...] DataSize(4) Data
//
// all integers big-endian; KIDs in RFC 9562 byte order, as in tenc.
//
// Trust boundary: Parse reads boxes from media files and documents that
// may come from anywhere. It never reads past its input, allocates no more
// than its input's size, and refuses (ErrMalformed) a box whose sizes do
// not add up.
package pssh

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// System IDs (https://dashif.org/identifiers/content_protection/).
var (
	// Widevine: edef8ba9-79d6-4ace-a3c8-27dcd51d21ed.
	Widevine = [16]byte{0xed, 0xef, 0x8b, 0xa9, 0x79, 0xd6, 0x4a, 0xce, 0xa3, 0xc8, 0x27, 0xdc, 0xd5, 0x1d, 0x21, 0xed}
	// PlayReady: 9a04f079-9840-4286-ab92-e65be0885f95.
	PlayReady = [16]byte{0x9a, 0x04, 0xf0, 0x79, 0x98, 0x40, 0x42, 0x86, 0xab, 0x92, 0xe6, 0x5b, 0xe0, 0x88, 0x5f, 0x95}
	// Common is the W3C "Common PSSH box" format
	// (https://w3c.github.io/encrypted-media/format-registry/initdata/cenc.html):
	// 1077efec-c0b2-4d02-ace3-3c1e52e2fb4b, a version 1 box with KIDs and no
	// data, which ClearKey uses.
	Common = [16]byte{0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02, 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b}
)

// ErrMalformed is returned by Parse for bytes that are not a well-formed
// pssh box.
var ErrMalformed = errors.New("pssh: malformed box")

// MaxKIDs bounds the KIDs of a version 1 box Parse accepts.
const MaxKIDs = 1024

// Box is one pssh box.
type Box struct {
	// Version is 0 (no KIDs in the box) or 1 (KIDs listed).
	Version  uint8
	SystemID [16]byte
	// KIDs are written for Version 1 only.
	KIDs [][16]byte
	// Data is the system-specific data (the Widevine header, the PlayReady
	// Object, nothing for the common box).
	Data []byte
}

// Marshal returns the box's bytes.
func (b *Box) Marshal() ([]byte, error) {
	if b.Version > 1 {
		return nil, fmt.Errorf("pssh: version %d, want 0 or 1", b.Version)
	}
	if b.Version == 0 && len(b.KIDs) > 0 {
		return nil, errors.New("pssh: a version 0 box carries no KIDs")
	}
	size := 8 + 4 + 16 + 4 + len(b.Data)
	if b.Version == 1 {
		size += 4 + 16*len(b.KIDs)
	}
	if uint64(size) > 0xffffffff {
		return nil, errors.New("pssh: box too large")
	}
	out := make([]byte, 0, size)
	out = binary.BigEndian.AppendUint32(out, uint32(size))
	out = append(out, 'p', 's', 's', 'h', b.Version, 0, 0, 0)
	out = append(out, b.SystemID[:]...)
	if b.Version == 1 {
		out = binary.BigEndian.AppendUint32(out, uint32(len(b.KIDs)))
		for _, k := range b.KIDs {
			out = append(out, k[:]...)
		}
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Data)))
	return append(out, b.Data...), nil
}

// Parse reads the pssh box at the start of p and returns it with the
// number of bytes it takes. The box's Data shares no memory with p.
func Parse(p []byte) (*Box, int, error) {
	if len(p) < 32 {
		return nil, 0, fmt.Errorf("%w: %d bytes, a box takes at least 32", ErrMalformed, len(p))
	}
	size := binary.BigEndian.Uint32(p)
	if string(p[4:8]) != "pssh" {
		return nil, 0, fmt.Errorf("%w: not a pssh box", ErrMalformed)
	}
	if size < 32 || uint64(size) > uint64(len(p)) {
		return nil, 0, fmt.Errorf("%w: the box size %d does not fit the %d bytes given", ErrMalformed, size, len(p))
	}
	box := p[:size]
	b := &Box{Version: box[8]}
	if b.Version > 1 {
		return nil, 0, fmt.Errorf("%w: version %d", ErrMalformed, b.Version)
	}
	// A pssh box is a FullBox with flags 0 (ISO/IEC 23001-7, 8.1.1):
	// other flags mean nothing, and a box that holds them would not be
	// written back as it was read.
	if box[9]|box[10]|box[11] != 0 {
		return nil, 0, fmt.Errorf("%w: flags %x, want 0", ErrMalformed, box[9:12])
	}
	copy(b.SystemID[:], box[12:28])
	rest := box[28:]
	if b.Version == 1 {
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if n > MaxKIDs || uint64(n)*16 > uint64(len(rest)) {
			return nil, 0, fmt.Errorf("%w: %d KIDs do not fit the box", ErrMalformed, n)
		}
		b.KIDs = make([][16]byte, n)
		for i := range b.KIDs {
			copy(b.KIDs[i][:], rest[16*i:])
		}
		rest = rest[16*n:]
	}
	if len(rest) < 4 {
		return nil, 0, fmt.Errorf("%w: no data size", ErrMalformed)
	}
	ds := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(ds) != uint64(len(rest)) {
		return nil, 0, fmt.Errorf("%w: the data size %d is not what remains of the box (%d)", ErrMalformed, ds, len(rest))
	}
	b.Data = append([]byte(nil), rest...)
	return b, int(size), nil
}

// ParseAll reads concatenated pssh boxes (as the PSSH of a DASH manifest
// or Shaka Packager's --pssh may hold).
func ParseAll(p []byte) ([]*Box, error) {
	var out []*Box
	for len(p) > 0 {
		b, n, err := Parse(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
		p = p[n:]
	}
	return out, nil
}

// FourCC returns the four-character code s ("cenc", "cbcs", ...) as the
// number the Widevine header's protection_scheme holds.
func FourCC(s string) (uint32, error) {
	if len(s) != 4 {
		return 0, fmt.Errorf("pssh: %q is not a four-character code", s)
	}
	return binary.BigEndian.Uint32([]byte(s)), nil
}
