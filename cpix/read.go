package cpix

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Read parses a CPIX 2.0 to 2.4 document from r and returns its content
// keys.
//
// A document longer than max bytes returns ErrTooLarge; Read never reads
// more than max+1 bytes from r. A document that Read refuses for its content
// returns a *ReadError listing every problem found (see Problem for the
// reasons). An error reading r is returned wrapped. max must be positive.
//
// A document with no ContentKey is valid CPIX and yields a Document with no
// keys; callers that need at least one check len(d.Keys).
//
// Memory is bounded by the document's keys, never by its other content:
// elements may nest at most MaxDepth deep (deeper is a nesting_too_deep
// problem, and reading stops), and a ReadError lists at most MaxProblems
// problems.
func Read(r io.Reader, max int64) (*Document, error) {
	return ReadWith(r, ReadOptions{Max: max})
}

// ReadOptions configures ReadWith.
type ReadOptions struct {
	// Max is the largest document read, in bytes (required, positive).
	Max int64
	// MaxKeys, when positive, refuses (too_many_keys, reading stops) a
	// document of more than MaxKeys ContentKeys.
	MaxKeys int
	// Recipient is the private key of this reader as a CPIX recipient: the
	// keys of a document encrypted to its certificate are decrypted (see
	// ReadWith). Nil: encrypted keys are refused
	// (encrypted_value_unsupported).
	Recipient *rsa.PrivateKey
}

// ReadWith is Read with options. With a Recipient, a document whose keys
// are encrypted (pskc:EncryptedValue, DASH-IF CPIX "Content Key
// Encryption") is read when one of its DeliveryData wraps the document key
// to the recipient: the document key and the MAC key are unwrapped
// (RSA-OAEP), every key's ValueMAC (HMAC-SHA512) is checked, and only when
// every MAC of the document matches are the keys decrypted (AES-256-CBC).
// A document with encrypted keys and no MACMethod is refused: every value
// must be authenticated. A signed document (any ds:Signature) is refused
// (signature_not_verified): signatures are not verified here, and a signed
// document is never read as if it were not signed.
func ReadWith(r io.Reader, o ReadOptions) (*Document, error) {
	max := o.Max
	if max <= 0 {
		return nil, fmt.Errorf("cpix: read limit must be positive, got %d", max)
	}
	cr := &countingReader{r: io.LimitReader(r, max+1)}
	br := bufio.NewReaderSize(cr, 32<<10)
	// encoding/xml hands a UTF-8 byte order mark back as text before the
	// prolog; drop it here.
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	dec := xml.NewDecoder(br)
	dec.Strict = true
	dec.CharsetReader = func(string, io.Reader) (io.Reader, error) { return nil, errCharset }

	p := &parser{dec: dec, seen: make(map[[16]byte]int), recipient: o.Recipient, maxKeys: o.MaxKeys}
	err := p.document()
	if err == nil {
		p.finish()
	}
	// The size check comes first: a truncated document fails to parse, and
	// the reason it failed is that it was too large.
	if cr.n > max {
		return nil, ErrTooLarge
	}
	if err != nil {
		if cr.err != nil && errors.Is(err, cr.err) {
			return nil, fmt.Errorf("cpix: reading document: %w", err)
		}
		p.fatal(err)
	}
	if p.count > 0 {
		for _, k := range p.doc.Keys {
			clear(k.Value)
		}
		return nil, &ReadError{Problems: p.problems, Count: p.count}
	}
	return &p.doc, nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// countingReader counts the bytes read through it and remembers the first
// error other than io.EOF, so Read can tell a failing reader from a bad
// document.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

var (
	errCharset = errors.New("only UTF-8 documents are supported")
	errDTD     = errors.New("DTDs are not allowed")
	// errStop ends parsing after a fatal problem that is already recorded.
	errStop = errors.New("stop")
)

// parser walks the token stream of one document. It resolves names by
// namespace URI, never by prefix, so <CPIX xmlns="urn:dashif:org:cpix">,
// <cpix:CPIX xmlns:cpix="urn:dashif:org:cpix"> and any other prefix read
// alike.
type parser struct {
	dec      *xml.Decoder
	doc      Document
	problems []Problem
	index    int              // position of the next ContentKey
	seen     map[[16]byte]int // KID → index of its first ContentKey
	count    int              // problems found; the first MaxProblems are in problems
	nodes    int              // nodes of the subtrees read (MaxTreeNodes)
	depth    int              // elements open
	maxKeys  int              // 0: no limit
	// recipient decrypts encrypted keys (ReadOptions.Recipient).
	recipient *rsa.PrivateKey
	// delivery are the DeliveryData elements read; encrypted the keys
	// waiting for decryption, by position in doc.Keys.
	delivery  []*Element
	encrypted []pendingKey
	signed    bool // a ds:Signature was seen
}

// pendingKey is an encrypted key read, to be decrypted once the whole
// document is read.
type pendingKey struct {
	pos, index int
	kid        string
	alg        string
	cipher     []byte
	mac        []byte
	hasMAC     bool
}

// rawKey is a ContentKey as written, before validation.
type rawKey struct {
	index           int
	kid, iv, scheme string
	hasKID, hasIV   bool
	hasScheme       bool
	dupAttrs        []string
	data, secrets   int
	plains          int
	plain           string
	plainNested     bool
	encrypted       bool
	encValue        *Element // the pskc:EncryptedValue
	mac             string
	hasMAC          bool
}

func (p *parser) problem(index int, kid, reason, detail string) {
	p.count++
	if len(p.problems) < MaxProblems {
		p.problems = append(p.problems, Problem{Index: index, KID: clip(kid, 64), Reason: reason, Detail: detail})
	}
}

// fatal records the error that ended parsing as a document-level problem.
// Details never quote the document: an XML syntax error message can echo
// document text, which may be key material.
func (p *parser) fatal(err error) {
	var se *xml.SyntaxError
	switch {
	case errors.Is(err, errStop):
	case errors.Is(err, errDTD):
		p.problem(-1, "", ReasonDTDNotAllowed, "DTDs are not allowed (<!DOCTYPE> or another <!...> declaration found)")
	case errors.Is(err, errCharset):
		p.problem(-1, "", ReasonUnsupportedEncoding, "only UTF-8 documents are supported")
	case errors.As(err, &se):
		p.problem(-1, "", ReasonMalformedXML, fmt.Sprintf("not well-formed XML (line %d)", se.Line))
	default:
		p.problem(-1, "", ReasonMalformedXML, "not well-formed XML")
	}
}

// next returns the next token, refusing every directive (<!DOCTYPE ...>,
// <!ENTITY ...>) wherever it appears, and elements nested deeper than
// MaxDepth.
func (p *parser) next() (xml.Token, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case xml.Directive:
		return nil, errDTD
	case xml.StartElement:
		if p.depth++; p.depth > MaxDepth {
			p.problem(-1, "", ReasonNestingTooDeep, fmt.Sprintf("elements are nested more than %d deep", MaxDepth))
			return nil, errStop
		}
		if isName(t.Name, NamespaceDSig, "Signature") {
			p.signed = true
		}
	case xml.EndElement:
		p.depth--
	}
	return tok, nil
}

// subtree reads the element whose start was just read into a tree (names
// resolved to namespace URIs), for the small parts of a document that are
// easier to read whole (DeliveryData, EncryptedValue).
func (p *parser) subtree(start xml.StartElement, depth int) (*Element, error) {
	if depth > MaxTreeDepth {
		return nil, &xml.SyntaxError{Msg: "elements nest too deep"}
	}
	if p.nodes++; p.nodes > MaxTreeNodes {
		p.problem(-1, "", ReasonTooManyNodes, fmt.Sprintf("the DeliveryDataList and EncryptedValues hold more than %d nodes", MaxTreeNodes))
		return nil, errStop
	}
	e := &Element{Space: start.Name.Space, Local: start.Name.Local}
	for _, a := range start.Attr {
		e.Attr = append(e.Attr, Attr{Space: a.Name.Space, Local: a.Name.Local, Value: a.Value})
	}
	for {
		tok, err := p.next()
		if err != nil {
			return nil, eofIsSyntax(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			c, err := p.subtree(t, depth+1)
			if err != nil {
				return nil, err
			}
			e.Append(c)
		case xml.CharData:
			if p.nodes++; p.nodes > MaxTreeNodes {
				p.problem(-1, "", ReasonTooManyNodes, fmt.Sprintf("the DeliveryDataList and EncryptedValues hold more than %d nodes", MaxTreeNodes))
				return nil, errStop
			}
			e.Append(Text(t))
		case xml.EndElement:
			return e, nil
		}
	}
}

// skip consumes the rest of the element whose start was just read.
func (p *parser) skip() error {
	for depth := 1; depth > 0; {
		tok, err := p.next()
		if err != nil {
			return eofIsSyntax(err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

// eofIsSyntax turns an io.EOF inside an element into a syntax error (the
// decoder already does so; this is belt and braces for the walk).
func eofIsSyntax(err error) error {
	if err == io.EOF {
		return &xml.SyntaxError{Msg: "unexpected EOF"}
	}
	return err
}

func isName(n xml.Name, space, local string) bool {
	return n.Space == space && n.Local == local
}

// notCPIXDetail explains a wrong root element without quoting the
// document.
func notCPIXDetail(n xml.Name) string {
	want := fmt.Sprintf("want the root element CPIX in the namespace %q (the same for CPIX 2.0 to 2.4)", NamespaceCPIX)
	switch {
	case n.Local != "CPIX":
		return "the root element is not CPIX; " + want
	case n.Space == "":
		return "the root element CPIX has no namespace; " + want
	default:
		return "the root element CPIX is in another namespace; " + want
	}
}

func (p *parser) document() error {
	var root xml.StartElement
prolog:
	for {
		tok, err := p.next()
		if err == io.EOF {
			p.problem(-1, "", ReasonMalformedXML, "empty document: no root element")
			return errStop
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			root = t
			break prolog
		case xml.CharData:
			if !isXMLSpace(t) {
				p.problem(-1, "", ReasonMalformedXML, "text before the root element")
				return errStop
			}
		}
	}
	if !isName(root.Name, NamespaceCPIX, "CPIX") {
		p.problem(-1, "", ReasonNotCPIX, notCPIXDetail(root.Name))
		return errStop
	}
	if d := duplicateAttrs(root.Attr, "contentId", "version"); len(d) > 0 {
		p.problem(-1, "", ReasonDuplicateAttribute, "CPIX has repeated attributes: "+strings.Join(d, ", "))
	}
	var hasContentID, hasVersion bool // the first of repeated attributes counts
	for _, a := range root.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "contentId":
			if hasContentID {
				continue
			}
			hasContentID = true
			p.doc.ContentID = a.Value
		case "version":
			if hasVersion {
				continue
			}
			hasVersion = true
			p.doc.Version = a.Value
			if !contains(supportedVersions, a.Value) {
				p.problem(-1, "", ReasonUnsupportedVersion,
					"this CPIX version is not supported; supported: no version attribute (2.0 to 2.2), "+
						strings.Join(supportedVersions, ", "))
			}
		}
	}

	lists := 0
body:
	for {
		tok, err := p.next()
		if err != nil {
			return eofIsSyntax(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if isName(t.Name, NamespaceCPIX, "ContentKeyList") {
				lists++
				if lists == 2 {
					p.problem(-1, "", ReasonInvalidStructure, "more than one ContentKeyList")
				}
				if err := p.contentKeyList(); err != nil {
					return err
				}
				continue
			}
			if isName(t.Name, NamespaceCPIX, "DeliveryDataList") {
				list, err := p.subtree(t, 1)
				if err != nil {
					return err
				}
				p.delivery = append(p.delivery, list.ChildElements(NamespaceCPIX, "DeliveryData")...)
				continue
			}
			// DRMSystemList, ContentKeyPeriodList, ContentKeyUsageRuleList,
			// UpdateHistoryItemList, ds:Signature and anything unknown.
			if err := p.skip(); err != nil {
				return err
			}
		case xml.EndElement:
			break body
		}
	}

	// Only white space, comments and processing instructions may follow
	// the root; encoding/xml does not check that on its own.
	for {
		tok, err := p.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			p.problem(-1, "", ReasonMalformedXML, "more than one root element")
			return errStop
		case xml.CharData:
			if !isXMLSpace(t) {
				p.problem(-1, "", ReasonMalformedXML, "text after the root element")
				return errStop
			}
		}
	}
}

func (p *parser) contentKeyList() error {
	for {
		tok, err := p.next()
		if err != nil {
			return eofIsSyntax(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if isName(t.Name, NamespaceCPIX, "ContentKey") {
				if err := p.contentKey(t); err != nil {
					return err
				}
				continue
			}
			// The schema allows only ContentKey here. Saying so beats
			// silently dropping, say, an unqualified <ContentKey> in a
			// prefixed document.
			detail := "an element other than ContentKey in ContentKeyList"
			if t.Name.Local == "ContentKey" {
				detail = "a ContentKey outside the CPIX namespace in ContentKeyList"
			}
			p.problem(-1, "", ReasonUnexpectedElement, detail+fmt.Sprintf("; want only ContentKey elements in the namespace %q", NamespaceCPIX))
			if err := p.skip(); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

func (p *parser) contentKey(start xml.StartElement) error {
	k := rawKey{index: p.index}
	p.index++
	if p.maxKeys > 0 && p.index > p.maxKeys {
		p.problem(-1, "", ReasonTooManyKeys, fmt.Sprintf("more than %d ContentKeys; send them in several documents", p.maxKeys))
		return errStop
	}
	k.dupAttrs = duplicateAttrs(start.Attr, "kid", "explicitIV", "commonEncryptionScheme")
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "kid":
			if !k.hasKID {
				k.kid, k.hasKID = a.Value, true
			}
		case "explicitIV":
			if !k.hasIV {
				k.iv, k.hasIV = a.Value, true
			}
		case "commonEncryptionScheme":
			if !k.hasScheme {
				k.scheme, k.hasScheme = a.Value, true
			}
		}
	}
	for {
		tok, err := p.next()
		if err != nil {
			return eofIsSyntax(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if isName(t.Name, NamespaceCPIX, "Data") {
				k.data++
				if err := p.data(&k); err != nil {
					return err
				}
				continue
			}
			if err := p.skip(); err != nil {
				return err
			}
		case xml.EndElement:
			p.check(&k)
			return nil
		}
	}
}

// data reads a ContentKey's Data element (cpix namespace, of the PSKC type
// KeyDataType): its pskc:Secret.
func (p *parser) data(k *rawKey) error {
	for {
		tok, err := p.next()
		if err != nil {
			return eofIsSyntax(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if isName(t.Name, NamespacePSKC, "Secret") {
				k.secrets++
				if err := p.secret(k); err != nil {
					return err
				}
				continue
			}
			if err := p.skip(); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// secret reads pskc:Secret: a pskc:PlainValue or a pskc:EncryptedValue
// (and perhaps a pskc:ValueMAC, ignored).
func (p *parser) secret(k *rawKey) error {
	for {
		tok, err := p.next()
		if err != nil {
			return eofIsSyntax(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case isName(t.Name, NamespacePSKC, "PlainValue"):
				k.plains++
				text, nested, err := p.text()
				if err != nil {
					return err
				}
				if k.plains == 1 {
					k.plain, k.plainNested = text, nested
				}
			case isName(t.Name, NamespacePSKC, "EncryptedValue"):
				ev, err := p.subtree(t, 1)
				if err != nil {
					return err
				}
				if !k.encrypted {
					k.encrypted, k.encValue = true, ev
				}
			case isName(t.Name, NamespacePSKC, "ValueMAC"):
				text, nested, err := p.text()
				if err != nil {
					return err
				}
				if !nested && !k.hasMAC {
					k.mac, k.hasMAC = text, true
				}
			default:
				if err := p.skip(); err != nil {
					return err
				}
			}
		case xml.EndElement:
			return nil
		}
	}
}

// text returns the character data of a simple-content element, and whether
// it held a child element (which it may not).
func (p *parser) text() (string, bool, error) {
	var b []byte
	nested := false
	for {
		tok, err := p.next()
		if err != nil {
			return "", false, eofIsSyntax(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b = append(b, t...)
		case xml.StartElement:
			nested = true
			if err := p.skip(); err != nil {
				return "", false, err
			}
		case xml.EndElement:
			return string(b), nested, nil
		}
	}
}

// check validates one ContentKey, records its problems and, when it has
// none, appends the key to the document. Details name the field at fault,
// never its value.
func (p *parser) check(k *rawKey) {
	before := p.count
	bad := func(reason, detail string) { p.problem(k.index, k.kid, reason, detail) }

	if len(k.dupAttrs) > 0 {
		bad(ReasonDuplicateAttribute, "ContentKey has repeated attributes: "+strings.Join(k.dupAttrs, ", "))
	}

	var key Key
	switch {
	case !k.hasKID:
		bad(ReasonMissingKID, "ContentKey has no kid attribute")
	default:
		id, ok := parseKID(k.kid)
		if !ok {
			bad(ReasonInvalidKID, "kid is not a UUID in canonical form (8-4-4-4-12 hex digits, such as d83cb192-1135-4c4e-9267-120b0d762856)")
			break
		}
		if first, dup := p.seen[id]; dup {
			bad(ReasonDuplicateKID, fmt.Sprintf("kid repeats ContentKey %d", first))
			break
		}
		p.seen[id] = k.index
		key.KID = id
	}

	if k.hasIV {
		iv, err := decodeBase64(trimXMLSpace(k.iv))
		switch {
		case err != nil:
			bad(ReasonInvalidBase64, "explicitIV: "+err.Error()+" (want the standard, padded base64 of 16 bytes)")
		case len(iv) != KeySize:
			bad(ReasonInvalidIVLength, fmt.Sprintf("explicitIV decodes to %d bytes, want %d", len(iv), KeySize))
		default:
			key.IV = iv
		}
	}

	if k.hasScheme {
		if !contains(schemes, k.scheme) {
			bad(ReasonInvalidScheme, "commonEncryptionScheme is not one of "+strings.Join(schemes, ", "))
		}
		key.CommonEncryptionScheme = k.scheme
	}

	switch {
	case k.data > 1 || k.secrets > 1 || k.plains > 1:
		bad(ReasonInvalidStructure, "ContentKey has more than one Data, pskc:Secret or pskc:PlainValue")
	case k.encrypted && k.plains > 0:
		bad(ReasonInvalidStructure, "pskc:Secret holds both a PlainValue and an EncryptedValue")
	case k.encrypted && p.recipient == nil:
		bad(ReasonEncryptedValueUnsupported, "the key is a pskc:EncryptedValue; encrypted CPIX is not supported without the recipient's private key (send the key as a pskc:PlainValue over a protected channel, or encrypt it to this server's recipient certificate)")
	case k.encrypted:
		alg, cv, err := encryptedValueParts(k.encValue)
		if err != nil {
			bad(ReasonInvalidEncryptedValue, "pskc:EncryptedValue: "+err.Error())
			break
		}
		pk := pendingKey{index: k.index, kid: k.kid, alg: alg, cipher: cv, hasMAC: k.hasMAC}
		if k.hasMAC {
			if pk.mac, err = decodeBase64(trimXMLSpace(k.mac)); err != nil {
				bad(ReasonInvalidBase64, "ValueMAC: "+err.Error())
				break
			}
		}
		defer func() {
			if p.count == before {
				pk.pos = len(p.doc.Keys) - 1
				p.encrypted = append(p.encrypted, pk)
			}
		}()
	case k.plains == 0:
		bad(ReasonMissingValue, fmt.Sprintf("ContentKey has no Data/pskc:Secret/pskc:PlainValue (Data in {%s}, Secret and PlainValue in {%s})", NamespaceCPIX, NamespacePSKC))
	case k.plainNested:
		bad(ReasonInvalidStructure, "pskc:PlainValue contains an element, want only base64 text")
	default:
		v, err := decodeBase64(trimXMLSpace(k.plain))
		switch {
		case err != nil:
			bad(ReasonInvalidBase64, "PlainValue: "+err.Error()+" (want the standard, padded base64 of 16 bytes)")
		case len(v) != KeySize:
			bad(ReasonInvalidKeyLength, fmt.Sprintf("PlainValue decodes to %d bytes, want %d (an AES-128 content key)", len(v), KeySize))
		default:
			key.Value = v
		}
	}

	if p.count == before {
		p.doc.Keys = append(p.doc.Keys, key)
	}
}

// duplicateAttrs returns those of names (unqualified attributes Read
// uses) that appear more than once in attrs. XML forbids repeated
// attributes but encoding/xml does not check; only the ones Read takes
// matter, and naming only those keeps document text out of messages.
func duplicateAttrs(attrs []xml.Attr, names ...string) []string {
	var dup []string
	for _, name := range names {
		n := 0
		for _, a := range attrs {
			if a.Name.Space == "" && a.Name.Local == name {
				n++
			}
		}
		if n > 1 {
			dup = append(dup, name)
		}
	}
	return dup
}

// encryptedValueParts reads a pskc:EncryptedValue (an XML Encryption
// EncryptedDataType): the EncryptionMethod's Algorithm and the decoded
// CipherData/CipherValue.
func encryptedValueParts(ev *Element) (alg string, cipherValue []byte, err error) {
	m := ev.Child(NamespaceXMLEnc, "EncryptionMethod")
	if m == nil {
		return "", nil, errors.New("no xenc:EncryptionMethod")
	}
	alg, _ = m.AttrValue("Algorithm")
	cd := ev.Child(NamespaceXMLEnc, "CipherData")
	if cd == nil || cd.Child(NamespaceXMLEnc, "CipherValue") == nil {
		return "", nil, errors.New("no xenc:CipherData/xenc:CipherValue")
	}
	cv, err := base64.StdEncoding.DecodeString(strings.Map(dropXMLSpace, cd.Child(NamespaceXMLEnc, "CipherValue").Text()))
	if err != nil || len(cv) == 0 {
		return "", nil, errors.New("CipherValue is not base64")
	}
	return alg, cv, nil
}

func dropXMLSpace(r rune) rune {
	if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
		return -1
	}
	return r
}

// finish applies the checks that need the whole document: signatures, and
// the decryption of encrypted keys.
func (p *parser) finish() {
	if p.signed {
		p.problem(-1, "", ReasonSignatureNotVerified, "the document is signed (ds:Signature); signatures are not verified here, so a signed document is refused rather than read as if it were not signed: send it without the signature over an authenticated channel")
	}
	if len(p.encrypted) == 0 || p.count > 0 {
		return
	}
	dk, ok := p.documentKey()
	if !ok {
		return
	}
	defer dk.Wipe()
	// Every MAC first: nothing is decrypted unless every value of the
	// document is authentic.
	for _, e := range p.encrypted {
		switch {
		case e.alg != AlgAES256CBC:
			p.problem(e.index, e.kid, ReasonUnsupportedAlgorithm, "a content key must be encrypted with "+AlgAES256CBC)
		case !e.hasMAC:
			p.problem(e.index, e.kid, ReasonMissingMAC, "the encrypted key has no pskc:ValueMAC; every encrypted value must be authenticated")
		case !hmac.Equal(dk.sum(e.cipher), e.mac):
			p.problem(e.index, e.kid, ReasonMACMismatch, "the ValueMAC does not match the encrypted key: the document was altered, or its MAC key is not the one wrapped for this recipient")
		}
	}
	if p.count > 0 {
		return
	}
	for _, e := range p.encrypted {
		v, err := dk.Decrypt(e.cipher, e.mac)
		switch {
		case err != nil:
			p.problem(e.index, e.kid, ReasonDecryptionFailed, "the encrypted key does not decrypt with the document key")
		case len(v) != KeySize:
			clear(v)
			p.problem(e.index, e.kid, ReasonInvalidKeyLength, fmt.Sprintf("the decrypted key is %d bytes, want %d (an AES-128 content key)", len(v), KeySize))
		default:
			p.doc.Keys[e.pos].Value = v
		}
	}
}

// documentKey finds the DeliveryData whose DocumentKey unwraps with the
// recipient's key and unwraps its document key and MAC key.
func (p *parser) documentKey() (*DocumentKey, bool) {
	if len(p.delivery) == 0 {
		p.problem(-1, "", ReasonNotRecipient, "the keys are encrypted but the document has no DeliveryData carrying the document key")
		return nil, false
	}
	for _, dd := range p.delivery {
		docKey := dd.Child(NamespaceCPIX, "DocumentKey")
		mac := dd.Child(NamespaceCPIX, "MACMethod")
		if docKey == nil {
			continue
		}
		if alg, _ := docKey.AttrValue("Algorithm"); alg != AlgAES256CBC {
			p.problem(-1, "", ReasonUnsupportedAlgorithm, "the DocumentKey's Algorithm must be "+AlgAES256CBC)
			return nil, false
		}
		var ev *Element
		if d := docKey.Child(NamespaceCPIX, "Data"); d != nil {
			if s := d.Child(NamespacePSKC, "Secret"); s != nil {
				ev = s.Child(NamespacePSKC, "EncryptedValue")
			}
		}
		if ev == nil {
			p.problem(-1, "", ReasonInvalidDeliveryData, "a DocumentKey has no Data/pskc:Secret/pskc:EncryptedValue")
			return nil, false
		}
		alg, wrappedKey, err := encryptedValueParts(ev)
		if err != nil || alg != AlgRSAOAEP {
			p.problem(-1, "", ReasonInvalidDeliveryData, "a DocumentKey must be wrapped with "+AlgRSAOAEP)
			return nil, false
		}
		if mac == nil {
			p.problem(-1, "", ReasonMissingMAC, "the DeliveryData has no MACMethod; encrypted keys are read only when every value is authenticated")
			return nil, false
		}
		if alg, _ := mac.AttrValue("Algorithm"); alg != AlgHMACSHA512 {
			p.problem(-1, "", ReasonUnsupportedAlgorithm, "the MACMethod's Algorithm must be "+AlgHMACSHA512)
			return nil, false
		}
		key := mac.Child(NamespaceCPIX, "Key")
		if key == nil {
			p.problem(-1, "", ReasonInvalidDeliveryData, "the MACMethod has no Key")
			return nil, false
		}
		alg, wrappedMAC, err := encryptedValueParts(key)
		if err != nil || alg != AlgRSAOAEP {
			p.problem(-1, "", ReasonInvalidDeliveryData, "the MAC key must be wrapped with "+AlgRSAOAEP)
			return nil, false
		}
		dk, err := UnwrapDocumentKey(p.recipient, wrappedKey, wrappedMAC)
		if err != nil {
			continue // wrapped for another recipient
		}
		return dk, true
	}
	p.problem(-1, "", ReasonNotRecipient, "the keys are encrypted to another recipient: no DeliveryData's document key opens with this server's recipient key")
	return nil, false
}
