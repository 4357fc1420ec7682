package pssh

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"
)

func kid(t testing.TB, s string) [16]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		t.Fatalf("kid %q", s)
	}
	return [16]byte(b)
}

// TestPublishedWidevineVectors: the boxes of the example in
// unifiedstreaming/pycpix (example/widevine_pssh.py, written with its own
// protocol buffer code), byte for byte, written and read back.
func TestPublishedWidevineVectors(t *testing.T) {
	for _, c := range []struct {
		name      string
		kids      []string
		contentID string
		want      string
	}{
		{"one key", []string{"e82f184c3aaa57b4ace8606b5e3febad"}, "",
			"AAAARnBzc2gBAAAA7e+LqXnWSs6jyCfc1R0h7QAAAAHoLxhMOqpXtKzoYGteP+utAAAAEhIQ6C8YTDqqV7Ss6GBrXj/rrQ=="},
		{"three keys and a content ID", []string{"e82f184c3aaa57b4ace8606b5e3febad", "087bcfc6f7a55716b8406aa6eba3369e", "0d6b40238da15e75af6875c514c59b63"}, "uspwvtest3",
			"AAAAlnBzc2gBAAAA7e+LqXnWSs6jyCfc1R0h7QAAAAPoLxhMOqpXtKzoYGteP+utCHvPxvelVxa4QGqm66M2ng1rQCONoV51r2h1xRTFm2MAAABCEhDoLxhMOqpXtKzoYGteP+utEhAIe8/G96VXFrhAaqbrozaeEhANa0AjjaFeda9odcUUxZtjIgp1c3B3dnRlc3Qz"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wd := &WidevineData{}
			for _, k := range c.kids {
				wd.KeyIDs = append(wd.KeyIDs, kid(t, k))
			}
			wd.ContentID = []byte(c.contentID)
			box := &Box{Version: 1, SystemID: Widevine, KIDs: wd.KeyIDs, Data: wd.Marshal()}
			got, err := box.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if b64 := base64.StdEncoding.EncodeToString(got); b64 != c.want {
				t.Fatalf("wrote %s\nwant  %s", b64, c.want)
			}
			want, _ := base64.StdEncoding.DecodeString(c.want)
			back, n, err := Parse(want)
			if err != nil || n != len(want) || back.Version != 1 || back.SystemID != Widevine || len(back.KIDs) != len(c.kids) {
				t.Fatalf("Parse: %+v %d %v", back, n, err)
			}
			wd2, err := ParseWidevineData(back.Data)
			if err != nil || len(wd2.KeyIDs) != len(c.kids) || string(wd2.ContentID) != c.contentID || wd2.Provider != "" {
				t.Fatalf("ParseWidevineData: %+v %v", wd2, err)
			}
		})
	}
}

// TestWidevineSchemeAndProvider: protection_scheme is field 9 as a varint
// of the FourCC (Shaka Packager writes 'cenc' as 48 e3 dc 95 9b 06), the
// provider field 3; unknown fields are skipped when reading.
func TestWidevineSchemeAndProvider(t *testing.T) {
	cenc, _ := FourCC("cenc")
	k := kid(t, "0123456789abcdef0123456789abcdef")
	wd := &WidevineData{KeyIDs: [][16]byte{k}, Provider: "keydelivery", ContentID: []byte("film"), ProtectionScheme: cenc}
	b := wd.Marshal()
	want := append([]byte{0x12, 0x10}, k[:]...)
	want = append(want, 0x1a, 11)
	want = append(want, "keydelivery"...)
	want = append(want, 0x22, 4, 'f', 'i', 'l', 'm', 0x48, 0xe3, 0xdc, 0x95, 0x9b, 0x06)
	if !bytes.Equal(b, want) {
		t.Fatalf("% x\nwant % x", b, want)
	}
	// An unknown varint field (algorithm = 1) and an unknown bytes field
	// (policy = 6) are skipped.
	withUnknown := append([]byte{0x08, 0x01, 0x32, 0x02, 'p', 'x'}, b...)
	got, err := ParseWidevineData(withUnknown)
	if err != nil || got.Provider != "keydelivery" || string(got.ContentID) != "film" || got.ProtectionScheme != cenc || len(got.KeyIDs) != 1 || got.KeyIDs[0] != k {
		t.Fatalf("%+v %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"short key id":      {0x12, 0x02, 1, 2},
		"cut length":        {0x12, 0x10, 1},
		"cut varint":        {0x48, 0x80},
		"bad wire type":     {0x0b},
		"provider not UTF8": {0x1a, 0x01, 0xff},
	} {
		if _, err := ParseWidevineData(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBoxRefuses(t *testing.T) {
	good, _ := (&Box{Version: 1, SystemID: Common, KIDs: [][16]byte{{1}}}).Marshal()
	if boxes, err := ParseAll(append(append([]byte(nil), good...), good...)); err != nil || len(boxes) != 2 {
		t.Fatalf("ParseAll: %v %v", boxes, err)
	}
	for name, bad := range map[string][]byte{
		"short":             good[:20],
		"not pssh":          append([]byte{0, 0, 0, 52, 'm', 'o', 'o', 'v'}, good[8:]...),
		"size too big":      append([]byte{0, 0, 1, 0}, good[4:]...),
		"version 2":         append(append([]byte(nil), good[:8]...), append([]byte{2}, good[9:]...)...),
		"too many kids":     append(append([]byte(nil), good[:28]...), append([]byte{0, 0, 0, 9}, good[32:]...)...),
		"data size too big": append(append([]byte(nil), good[:48]...), 0, 0, 0, 1),
	} {
		if _, _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := (&Box{Version: 0, KIDs: [][16]byte{{1}}}).Marshal(); err == nil {
		t.Error("a version 0 box with KIDs")
	}
}

// FuzzParse: Parse never panics; a box it accepts marshals back to the
// same bytes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"AAAARnBzc2gBAAAA7e+LqXnWSs6jyCfc1R0h7QAAAAHoLxhMOqpXtKzoYGteP+utAAAAEhIQ6C8YTDqqV7Ss6GBrXj/rrQ=="} {
		b, _ := base64.StdEncoding.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		b, n, err := Parse(p)
		if err != nil {
			return
		}
		out, err := b.Marshal()
		if err != nil || !bytes.Equal(out, p[:n]) {
			t.Fatalf("%x read as %+v, written as %x (%v)", p[:n], b, out, err)
		}
		if wd, err := ParseWidevineData(b.Data); err == nil {
			_ = wd.Marshal()
		}
	})
}
