package delivery

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/keydelivery/keydelivery/keystore"
)

// playReadyKIDs reads the key IDs from the WRMHEADER of a PlayReady license
// challenge (the SOAP AcquireLicense body players POST), so that the AMS
// form POST /PlayReady/ works without ?kid=. Every header version is read:
// 4.0 (<KID>base64</KID> in DATA), 4.1 (<KID VALUE="base64"/> in
// PROTECTINFO) and 4.2/4.3 (<KIDS><KID VALUE="base64"/></KIDS>). PlayReady
// writes a KID as a little-endian GUID; it is returned in UUID byte order.
func playReadyKIDs(challenge []byte) ([]keystore.KeyID, error) {
	if len(bytes.TrimSpace(challenge)) == 0 {
		return nil, nil
	}
	d := xml.NewDecoder(bytes.NewReader(challenge))
	d.Strict = true
	var ids []keystore.KeyID
	depth, inHeader := 0, 0 // inHeader: depth of the WRMHEADER element, 0 outside
	var text strings.Builder
	inKID := false
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("delivery: playready challenge: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 64 {
				return nil, errors.New("delivery: playready challenge nests too deep")
			}
			switch {
			case t.Name.Local == "WRMHEADER":
				inHeader = depth
			case inHeader > 0 && t.Name.Local == "KID":
				for _, a := range t.Attr {
					if a.Name.Local == "VALUE" {
						id, err := playReadyGUID(a.Value)
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
					id, err := playReadyGUID(v)
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

// playReadyGUID decodes a base64 PlayReady KID (a little-endian GUID) into
// UUID byte order.
func playReadyGUID(s string) (keystore.KeyID, error) {
	var id keystore.KeyID
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("delivery: playready KID %q is not the base64 of 16 bytes", s)
	}
	copy(id[:], b)
	id[0], id[1], id[2], id[3] = id[3], id[2], id[1], id[0]
	id[4], id[5] = id[5], id[4]
	id[6], id[7] = id[7], id[6]
	return id, nil
}
