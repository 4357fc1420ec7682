package httpedge

import (
	"errors"
	"strings"
	"testing"
)

// flexInt is a member type with its own decoder, as the admin plane has
// (an integer given as a number or a string).
type flexInt int

var errFlex = errors.New("must be an integer")

func (f *flexInt) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "1", `"1"`:
		*f = 1
		return nil
	}
	return errFlex
}

type testBody struct {
	ID     string   `json:"id"`
	Name   *string  `json:"name"`
	Assets []string `json:"assets"`
	N      flexInt  `json:"n"`
	D      RawJSON  `json:"d"`
}

func TestDecodeJSON(t *testing.T) {
	var b testBody
	if err := DecodeJSON([]byte(` {"id":"a","name":null,"assets":["x"],"n":"1","d":{"k": [1]}} `), &b); err != nil {
		t.Fatal(err)
	}
	if b.ID != "a" || b.Name != nil || len(b.Assets) != 1 || b.N != 1 || string(b.D) != `{"k": [1]}` {
		t.Fatalf("%+v %s", b, b.D)
	}
	for _, empty := range []string{"", "  \n"} {
		var e testBody
		if err := DecodeJSON([]byte(empty), &e); err != nil || e.ID != "" {
			t.Fatalf("empty body %q: %v", empty, err)
		}
	}
}

func TestDecodeJSONRefuses(t *testing.T) {
	tests := []struct {
		name, body string
		kind       error
		member     string
	}{
		{"not JSON", `{"id":`, ErrBodySyntax, ""},
		{"array", `[{"id":"a"}]`, ErrBodyNotObject, ""},
		{"null", `null`, ErrBodyNotObject, ""},
		{"string", `"x"`, ErrBodyNotObject, ""},
		{"two objects", `{}{}`, ErrBodyTrailing, ""},
		{"unknown member", `{"id":"a","nope":1}`, ErrUnknownMember, "nope"},
		{"case variant", `{"ID":"a"}`, ErrUnknownMember, "ID"},
		{"Kelvin sign", "{\"\u212aey\":1}", ErrUnknownMember, "\u212aey"},
		{"duplicate", `{"id":"a","id":"b"}`, ErrDuplicateMember, "id"},
		{"wrong type", `{"id":5}`, ErrMemberType, "id"},
		{"wrong element type", `{"assets":[1]}`, ErrMemberType, "assets"},
		{"own decoder refuses", `{"n":2}`, ErrMemberType, "n"},
		{"invalid UTF-8", "{\"id\":\"\xff\"}", ErrBodySyntax, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b testBody
			err := DecodeJSON([]byte(tt.body), &b)
			var be *BodyError
			if !errors.As(err, &be) || !errors.Is(err, tt.kind) || be.Member != tt.member {
				t.Fatalf("err = %#v, want kind %v member %q", err, tt.kind, tt.member)
			}
			if want := map[string]string{"id": "a string", "assets": "an array of strings"}[be.Member]; tt.kind == ErrMemberType && be.Want != want {
				t.Fatalf("Want %q, want %q", be.Want, want)
			}
			if tt.name == "own decoder refuses" && !errors.Is(err, errFlex) {
				t.Fatalf("the member's own error is lost: %v", err)
			}
			if strings.Contains(err.Error(), `"b"`) || strings.Contains(err.Error(), "5") {
				t.Fatalf("the error quotes a value: %v", err)
			}
		})
	}
}

func TestDecodeBase64(t *testing.T) {
	var dst [16]byte
	if err := DecodeBase64(dst[:], "AQIDBAUGBwgJCgsMDQ4PEA=="); err != nil || dst[0] != 1 || dst[15] != 16 {
		t.Fatalf("%x %v", dst, err)
	}
	for _, bad := range []string{
		"",
		"AQIDBAUGBwgJCgsMDQ4PEA",   // no padding
		"AQIDBAUGBwgJCgsMDQ4PEB==", // stray padding bits
		"AQIDBAUGBwgJCgsMDQ4P\nA==",
		"AQIDBAUGBwgJCgsMDQ4PEBES", // 18 bytes
		"!QIDBAUGBwgJCgsMDQ4PEA==",
		"AQIDBAUGBwgJCgsMDQ4=====",
	} {
		var d [16]byte
		err := DecodeBase64(d[:], bad)
		if err == nil || d != ([16]byte{}) {
			t.Errorf("%q accepted: %x", bad, d)
			continue
		}
		if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("the error quotes the value: %v", err)
		}
	}
}

func TestDecodeJSONArray(t *testing.T) {
	var raw []RawJSON
	if err := DecodeJSONArray([]byte(` [{"a":1}, 5, null] `), &raw); err != nil || len(raw) != 3 || string(raw[0]) != `{"a":1}` || string(raw[2]) != "null" {
		t.Fatalf("%q %v", raw, err)
	}
	for _, bad := range []string{"", "{}", "null", "[1] [2]", "[1,"} {
		if err := DecodeJSONArray([]byte(bad), &raw); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
