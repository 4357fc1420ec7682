package cpix

import (
	"bufio"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Write writes d to w as a CPIX 2.3 document (version="2.3"), in the
// default-namespace form of the DASH-IF examples, with one ContentKey per
// key in the given order: kid in canonical lower-case form, explicitIV when
// the key has an IV, commonEncryptionScheme when set, and the key in
// Data/pskc:Secret/pskc:PlainValue as standard base64. d.Version is ignored.
//
// Write checks d first and writes nothing if it would produce a document
// that Read refuses: every Value must be 16 bytes, every IV absent or 16
// bytes, every scheme one that Read accepts, no KID may repeat, and
// ContentID must be UTF-8 text that XML can carry. The output is
// deterministic, and Read gives back the same ContentID and keys.
func Write(w io.Writer, d *Document) error {
	if d == nil {
		return errors.New("cpix: write: nil document")
	}
	if err := checkWrite(d); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(xml.Header)
	bw.WriteString(`<CPIX xmlns="` + NamespaceCPIX + `" xmlns:pskc="` + NamespacePSKC +
		`" xmlns:ds="` + NamespaceDSig + `" xmlns:enc="` + NamespaceXMLEnc + `"`)
	if d.ContentID != "" {
		bw.WriteString(` contentId="`)
		// EscapeText also escapes quotes, tab, CR and LF, so the value
		// survives attribute-value normalization.
		if err := xml.EscapeText(bw, []byte(d.ContentID)); err != nil {
			return fmt.Errorf("cpix: write: %w", err)
		}
		bw.WriteString(`"`)
	}
	bw.WriteString(` version="` + WriteVersion + `">` + "\n")
	bw.WriteString("  <ContentKeyList>\n")
	var b64 [24]byte
	for _, k := range d.Keys {
		bw.WriteString(`    <ContentKey kid="` + formatKID(k.KID) + `"`)
		if len(k.IV) > 0 {
			base64.StdEncoding.Encode(b64[:], k.IV)
			bw.WriteString(` explicitIV="`)
			bw.Write(b64[:])
			bw.WriteString(`"`)
		}
		if k.CommonEncryptionScheme != "" {
			bw.WriteString(` commonEncryptionScheme="` + k.CommonEncryptionScheme + `"`)
		}
		bw.WriteString(">\n      <Data>\n        <pskc:Secret>\n          <pskc:PlainValue>")
		base64.StdEncoding.Encode(b64[:], k.Value)
		bw.Write(b64[:])
		bw.WriteString("</pskc:PlainValue>\n        </pskc:Secret>\n      </Data>\n    </ContentKey>\n")
	}
	bw.WriteString("  </ContentKeyList>\n</CPIX>\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cpix: write: %w", err)
	}
	return nil
}

// checkWrite refuses what Read would refuse. Messages never carry key
// material.
func checkWrite(d *Document) error {
	if !utf8.ValidString(d.ContentID) {
		return errors.New("cpix: write: contentId is not valid UTF-8")
	}
	for _, r := range d.ContentID {
		if !isXMLChar(r) {
			return fmt.Errorf("cpix: write: contentId contains %U, which XML cannot carry", r)
		}
	}
	seen := make(map[[16]byte]int, len(d.Keys))
	for i, k := range d.Keys {
		kid := formatKID(k.KID)
		if first, dup := seen[k.KID]; dup {
			return fmt.Errorf("cpix: write: key %d (kid %s) repeats key %d", i, kid, first)
		}
		seen[k.KID] = i
		if len(k.Value) != KeySize {
			return fmt.Errorf("cpix: write: key %d (kid %s): value is %d bytes, want %d", i, kid, len(k.Value), KeySize)
		}
		if len(k.IV) != 0 && len(k.IV) != KeySize {
			return fmt.Errorf("cpix: write: key %d (kid %s): IV is %d bytes, want %d or none", i, kid, len(k.IV), KeySize)
		}
		if k.CommonEncryptionScheme != "" && !contains(schemes, k.CommonEncryptionScheme) {
			return fmt.Errorf("cpix: write: key %d (kid %s): commonEncryptionScheme %q is not one of %v", i, kid, clip(k.CommonEncryptionScheme, 16), schemes)
		}
	}
	return nil
}

// isXMLChar reports whether r is in the XML 1.0 Char production.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// WriteEncrypted writes d as an encrypted CPIX 2.3 document: like Write, but
// each key goes as a pskc:EncryptedValue with its pskc:ValueMAC, under one
// document key and one MAC key wrapped for each recipient in a
// DeliveryDataList (see the encrypted CPIX notes in encrypt.go). No key is
// written in the clear. Every recipient must hold an RSA key of at least
// MinRSABits bits. ReadWith, given a recipient's private key, reads the
// keys back.
func WriteEncrypted(w io.Writer, d *Document, recipients []*x509.Certificate, rand io.Reader) error {
	if d == nil {
		return errors.New("cpix: write: nil document")
	}
	if len(recipients) == 0 {
		return errors.New("cpix: write: an encrypted document needs at least one recipient")
	}
	if err := checkWrite(d); err != nil {
		return err
	}
	root := &Element{Space: NamespaceCPIX, Local: "CPIX", Attr: []Attr{
		{Space: NamespaceXMLNS, Local: "xmlns", Value: NamespaceCPIX},
		{Space: NamespaceXMLNS, Prefix: "xmlns", Local: "pskc", Value: NamespacePSKC},
		{Space: NamespaceXMLNS, Prefix: "xmlns", Local: "ds", Value: NamespaceDSig},
		{Space: NamespaceXMLNS, Prefix: "xmlns", Local: "enc", Value: NamespaceXMLEnc},
	}}
	if d.ContentID != "" {
		root.SetAttr("contentId", d.ContentID)
	}
	root.SetAttr("version", WriteVersion)
	dk, err := NewDocumentKey(rand)
	if err != nil {
		return err
	}
	defer dk.Wipe()
	list := NewElement(NamespaceCPIX, "DeliveryDataList")
	for i, cert := range recipients {
		_, pub, err := RecipientKey(cert.Raw)
		if err != nil {
			return fmt.Errorf("%w (recipient %d)", err, i+1)
		}
		wk, wm, err := dk.Wrap(rand, pub)
		if err != nil {
			return err
		}
		dd := NewElement(NamespaceCPIX, "DeliveryData")
		dd.SetAttr("id", fmt.Sprintf("recipient-%d", i+1))
		key := NewElement(NamespaceCPIX, "DeliveryKey")
		xd := NewElement(NamespaceDSig, "X509Data")
		xc := NewElement(NamespaceDSig, "X509Certificate")
		xc.SetText(base64.StdEncoding.EncodeToString(cert.Raw))
		xd.Append(xc)
		key.Append(xd)
		docKey, mac := DeliveryElements(wk, wm)
		dd.Append(key)
		dd.Append(docKey)
		dd.Append(mac)
		list.Append(dd)
	}
	root.Append(list)
	keys := NewElement(NamespaceCPIX, "ContentKeyList")
	for _, k := range d.Keys {
		ck := NewElement(NamespaceCPIX, "ContentKey")
		ck.SetAttr("kid", formatKID(k.KID))
		if len(k.IV) > 0 {
			ck.SetAttr("explicitIV", base64.StdEncoding.EncodeToString(k.IV))
		}
		if k.CommonEncryptionScheme != "" {
			ck.SetAttr("commonEncryptionScheme", k.CommonEncryptionScheme)
		}
		secret, err := dk.EncryptedSecret(rand, k.Value)
		if err != nil {
			return err
		}
		data := NewElement(NamespaceCPIX, "Data")
		data.Append(secret)
		ck.Append(data)
		keys.Append(ck)
	}
	root.Append(keys)
	return root.WriteDocument(w)
}
