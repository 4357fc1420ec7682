package playready

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxDepth bounds the element nesting HeaderKIDs accepts.
const maxDepth = 64

// HeaderKIDs reads the key IDs from the PlayReady header (WRMHEADER) inside
// a document, typically a license challenge (the SOAP AcquireLicense body
// players POST), so that a license request names its keys without ?kid=.
// Every header version is read:
// 4.0 (<KID>base64</KID> in DATA), 4.1 (<KID VALUE="base64"/> in
// PROTECTINFO) and 4.2/4.3 (<KIDS><KID VALUE="base64"/></KIDS>). PlayReady
// writes a KID as a little-endian GUID; it is returned in RFC 9562 byte
// order, each KID once. A document without a WRMHEADER has no KIDs (and no
// error); a malformed document or KID is an error.
func HeaderKIDs(challenge []byte) ([][16]byte, error) {
	if len(bytes.TrimSpace(challenge)) == 0 {
		return nil, nil
	}
	d := xml.NewDecoder(bytes.NewReader(challenge))
	d.Strict = true
	var ids [][16]byte
	depth, inHeader := 0, 0 // inHeader: depth of the WRMHEADER element, 0 outside
	var text strings.Builder
	inKID := false
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("playready: header: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return nil, errors.New("playready: header: elements nest too deep")
			}
			switch {
			case t.Name.Local == "WRMHEADER":
				inHeader = depth
			case inHeader > 0 && t.Name.Local == "KID":
				for _, a := range t.Attr {
					if a.Name.Local == "VALUE" {
						id, err := kidFromBase64(a.Value)
						if err != nil {
							return nil, err
						}
						ids = appendUnique(ids, id)
					}
				}
				inKID = true
				text.Reset()
			}
		case xml.CharData:
			if inKID && text.Len() < 64 {
				text.Write(t)
			}
		case xml.EndElement:
			if inKID && t.Name.Local == "KID" {
				inKID = false
				if v := strings.TrimSpace(text.String()); v != "" {
					id, err := kidFromBase64(v)
					if err != nil {
						return nil, err
					}
					ids = appendUnique(ids, id)
				}
			}
			if depth == inHeader {
				inHeader = 0
			}
			depth--
		}
	}
	return ids, nil
}

// kidFromBase64 decodes a base64 PlayReady KID (a little-endian GUID) into
// RFC 9562 byte order. The error quotes at most a short prefix of s.
func kidFromBase64(s string) ([16]byte, error) {
	var g [16]byte
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(g) {
		if len(s) > 32 {
			s = s[:32] + "..."
		}
		return g, fmt.Errorf("playready: KID %q is not the base64 of 16 bytes", s)
	}
	copy(g[:], b)
	return GUID(g), nil
}

// appendUnique appends id to ids unless it is there already.
func appendUnique(ids [][16]byte, id [16]byte) [][16]byte {
	for _, have := range ids {
		if have == id {
			return ids
		}
	}
	return append(ids, id)
}
