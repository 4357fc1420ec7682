package cpix

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The tree codec: a document read into elements that keep everything they
// were written with, so that a key provider can answer a request document
// with the same document, filled in. SPEKE requires exactly that: "the
// response is the request with what the key provider fills in", every
// element and attribute of the request kept (AWS, "SPEKE API v2 -
// Customizations and constraints to the DASH-IF specification"). Read and
// Write, which keep only the keys, cannot do it; ParseTree and
// Element.WriteDocument can, for any namespace, prefix, unknown element or
// attribute, comment or processing instruction.

// Namespace URIs the tree knows besides the CPIX ones.
const (
	// NamespaceXML is the namespace of the predeclared prefix xml.
	NamespaceXML = "http://www.w3.org/XML/1998/namespace"
	// NamespaceXMLNS is the namespace of namespace declarations
	// (xmlns="..." and xmlns:p="...") as Attr.Space.
	NamespaceXMLNS = "http://www.w3.org/2000/xmlns/"
)

// Limits of ParseTree: a document nests at most MaxTreeDepth elements
// deep, and holds at most MaxTreeNodes nodes (elements, runs of text,
// comments, processing instructions), which bounds the memory of its tree
// (about 150 bytes a node) whatever its size: a 4 MB document of empty
// elements would otherwise take 150 MiB. A SPEKE request for hundreds of
// keys and every DRM system holds about ten thousand. Its size is bounded
// by the caller's limit.
const (
	MaxTreeDepth = 64
	MaxTreeNodes = 100_000
)

// Node is a child of an Element: *Element, Text, Comment or *ProcInst.
type Node interface{ isNode() }

// Text is character data (CDATA sections included, read as their text).
type Text string

// Comment is an XML comment's text.
type Comment string

// ProcInst is a processing instruction inside the root element.
type ProcInst struct {
	Target string
	Inst   string
}

func (Text) isNode()      {}
func (Comment) isNode()   {}
func (*ProcInst) isNode() {}
func (*Element) isNode()  {}

// Attr is an attribute as written. Space is the namespace URI of a
// prefixed attribute ("" for an unprefixed one, which is in no namespace),
// Prefix the prefix it was written with. A namespace declaration is an
// Attr too, with Space NamespaceXMLNS: xmlns:p="URI" has Prefix "xmlns" and
// Local "p", xmlns="URI" has Prefix "" and Local "xmlns".
type Attr struct {
	Space, Prefix, Local string
	Value                string
}

// Element is one element of a document, with its name, its attributes in
// the order written (namespace declarations included) and its children.
// Space is the namespace URI the element's prefix resolves to, Prefix the
// prefix it was written with ("" for the default namespace).
//
// An element made with NewElement has no prefix of its own: WriteDocument
// uses a prefix bound to its namespace where it is written, or declares
// one, so code adding elements to a document never deals with prefixes.
type Element struct {
	Space, Prefix, Local string
	Attr                 []Attr
	Children             []Node
	made                 bool
}

// NewElement returns an element in namespace space with local name local,
// whose prefix WriteDocument chooses.
func NewElement(space, local string) *Element {
	return &Element{Space: space, Local: local, made: true}
}

// Is reports whether e is the element {space}local.
func (e *Element) Is(space, local string) bool { return e.Space == space && e.Local == local }

// ChildElements returns the child elements of e named {space}local, in
// order.
func (e *Element) ChildElements(space, local string) []*Element {
	var out []*Element
	for _, n := range e.Children {
		if c, ok := n.(*Element); ok && c.Is(space, local) {
			out = append(out, c)
		}
	}
	return out
}

// Elements returns every child element of e, in order.
func (e *Element) Elements() []*Element {
	var out []*Element
	for _, n := range e.Children {
		if c, ok := n.(*Element); ok {
			out = append(out, c)
		}
	}
	return out
}

// Child returns the first child element of e named {space}local, or nil.
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Children {
		if c, ok := n.(*Element); ok && c.Is(space, local) {
			return c
		}
	}
	return nil
}

// AttrValue returns the value of e's unprefixed attribute local (the first,
// should it be repeated).
func (e *Element) AttrValue(local string) (string, bool) {
	for _, a := range e.Attr {
		if a.Space == "" && a.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// SetAttr sets e's unprefixed attribute local to value, in place when it
// exists, else after the others.
func (e *Element) SetAttr(local, value string) {
	for i, a := range e.Attr {
		if a.Space == "" && a.Local == local {
			e.Attr[i].Value = value
			return
		}
	}
	e.Attr = append(e.Attr, Attr{Local: local, Value: value})
}

// Text returns the character data directly inside e.
func (e *Element) Text() string {
	var b strings.Builder
	for _, n := range e.Children {
		if t, ok := n.(Text); ok {
			b.WriteString(string(t))
		}
	}
	return b.String()
}

// HasElements reports whether e has a child element.
func (e *Element) HasElements() bool {
	for _, n := range e.Children {
		if _, ok := n.(*Element); ok {
			return true
		}
	}
	return false
}

// SetText replaces e's children with the character data s.
func (e *Element) SetText(s string) { e.Children = []Node{Text(s)} }

// Append adds c as e's last child.
func (e *Element) Append(c Node) { e.Children = append(e.Children, c) }

// InsertAfter adds c right after the child ref (at the end when ref is not
// a child of e).
func (e *Element) InsertAfter(ref *Element, c Node) {
	for i, n := range e.Children {
		if n == Node(ref) {
			e.Children = append(e.Children[:i+1], append([]Node{c}, e.Children[i+1:]...)...)
			return
		}
	}
	e.Append(c)
}

// Remove removes the child c from e, if it is one.
func (e *Element) Remove(c *Element) {
	for i, n := range e.Children {
		if n == Node(c) {
			e.Children = append(e.Children[:i], e.Children[i+1:]...)
			return
		}
	}
}

// ParseTree reads an XML document from r into a tree, keeping every element,
// attribute, namespace declaration, prefix, text, comment and processing
// instruction inside the root. It reads at most max+1 bytes: a longer
// document is ErrTooLarge. Like Read, it accepts UTF-8 only and refuses any
// DTD or other <!...> declaration (no entity expansion), and refuses what
// is not namespace-well-formed: an unbound prefix, a repeated attribute, an
// end tag that does not match. A refused document is a *ReadError with one
// document-level Problem (malformed_xml, dtd_not_allowed,
// unsupported_encoding or invalid_structure for nesting deeper than
// MaxTreeDepth) whose detail quotes no document text. The root may be any
// element: checking that it is CPIX is the caller's.
func ParseTree(r io.Reader, max int64) (*Element, error) {
	if max <= 0 {
		return nil, fmt.Errorf("cpix: read limit must be positive, got %d", max)
	}
	cr := &countingReader{r: io.LimitReader(r, max+1)}
	br := bufio.NewReaderSize(cr, 32<<10)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	dec := xml.NewDecoder(br)
	dec.Strict = true
	dec.CharsetReader = func(string, io.Reader) (io.Reader, error) { return nil, errCharset }
	tp := &treeParser{dec: dec}
	root, err := tp.document()
	if cr.n > max {
		return nil, ErrTooLarge
	}
	if err != nil {
		if cr.err != nil && errors.Is(err, cr.err) {
			return nil, fmt.Errorf("cpix: reading document: %w", err)
		}
		p := &parser{}
		var te *treeError
		if errors.As(err, &te) {
			p.problem(-1, "", te.reason, te.detail)
		} else {
			p.fatal(err)
		}
		return nil, &ReadError{Problems: p.problems}
	}
	return root, nil
}

// treeError is a refusal of ParseTree with its reason and detail.
type treeError struct{ reason, detail string }

func (e *treeError) Error() string { return e.reason + ": " + e.detail }

func malformed(detail string, line int) error {
	if line > 0 {
		detail = fmt.Sprintf("%s (line %d)", detail, line)
	}
	return &treeError{reason: ReasonMalformedXML, detail: detail}
}

type treeParser struct {
	dec   *xml.Decoder
	nodes int // nodes made so far (MaxTreeNodes)
	stack []*Element
	// scopes[i] holds the declarations of stack[i]: prefix → URI ("" is
	// the default namespace).
	scopes []map[string]string
}

// lookup resolves a prefix in the current scope.
func (tp *treeParser) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return NamespaceXML, true
	}
	for i := len(tp.scopes) - 1; i >= 0; i-- {
		if uri, ok := tp.scopes[i][prefix]; ok {
			return uri, true
		}
	}
	if prefix == "" {
		return "", true // no default namespace declared
	}
	return "", false
}

func (tp *treeParser) next() (xml.Token, error) {
	tok, err := tp.dec.RawToken()
	if err != nil {
		return nil, err
	}
	if _, ok := tok.(xml.Directive); ok {
		return nil, errDTD
	}
	return tok, nil
}

func (tp *treeParser) line() int {
	l, _ := tp.dec.InputPos()
	return l
}

func (tp *treeParser) document() (*Element, error) {
	var root *Element
	for {
		tok, err := tp.next()
		if err == io.EOF {
			if root == nil {
				return nil, malformed("empty document: no root element", 0)
			}
			if len(tp.stack) > 0 {
				return nil, malformed("the document ends inside an element", tp.line())
			}
			return root, nil
		}
		if err != nil {
			return nil, err
		}
		inRoot := len(tp.stack) > 0
		switch tok.(type) {
		case xml.StartElement, xml.CharData, xml.Comment, xml.ProcInst:
			if tp.nodes++; tp.nodes > MaxTreeNodes {
				return nil, &treeError{reason: ReasonTooManyNodes, detail: fmt.Sprintf("the document holds more than %d nodes (elements, texts, comments)", MaxTreeNodes)}
			}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !inRoot && root != nil {
				return nil, malformed("more than one root element", tp.line())
			}
			e, err := tp.start(t)
			if err != nil {
				return nil, err
			}
			if root == nil {
				root = e
			}
		case xml.EndElement:
			if err := tp.end(t); err != nil {
				return nil, err
			}
		case xml.CharData:
			if !inRoot {
				if !isXMLSpace(t) {
					return nil, malformed("text outside the root element", tp.line())
				}
				continue
			}
			if len(t) == 0 {
				continue // an empty CDATA section: no text to keep
			}
			top := tp.stack[len(tp.stack)-1]
			if n := len(top.Children); n > 0 {
				if prev, ok := top.Children[n-1].(Text); ok {
					top.Children[n-1] = prev + Text(t)
					continue
				}
			}
			top.Append(Text(t))
		case xml.Comment:
			if inRoot {
				tp.stack[len(tp.stack)-1].Append(Comment(t))
			}
		case xml.ProcInst:
			if inRoot {
				tp.stack[len(tp.stack)-1].Append(&ProcInst{Target: t.Target, Inst: string(t.Inst)})
			}
		}
	}
}

func (tp *treeParser) start(t xml.StartElement) (*Element, error) {
	if len(tp.stack) >= MaxTreeDepth {
		return nil, &treeError{reason: ReasonInvalidStructure, detail: fmt.Sprintf("elements nest more than %d deep", MaxTreeDepth)}
	}
	scope := map[string]string{}
	e := &Element{Prefix: t.Name.Space, Local: t.Name.Local}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			scope[""] = a.Value
		case a.Name.Space == "xmlns":
			if a.Value == "" {
				return nil, malformed("a namespace prefix is declared with an empty URI", tp.line())
			}
			scope[a.Name.Local] = a.Value
		}
	}
	tp.scopes = append(tp.scopes, scope)
	uri, ok := tp.lookup(e.Prefix)
	if !ok {
		return nil, malformed("an element uses a namespace prefix that is not declared", tp.line())
	}
	e.Space = uri
	for _, a := range t.Attr {
		at := Attr{Prefix: a.Name.Space, Local: a.Name.Local, Value: a.Value}
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns", a.Name.Space == "xmlns":
			at.Space = NamespaceXMLNS
		case a.Name.Space != "":
			uri, ok := tp.lookup(a.Name.Space)
			if !ok {
				return nil, malformed("an attribute uses a namespace prefix that is not declared", tp.line())
			}
			at.Space = uri
		}
		for _, prev := range e.Attr {
			if prev.Space == at.Space && prev.Local == at.Local {
				return nil, malformed("an element repeats an attribute", tp.line())
			}
		}
		e.Attr = append(e.Attr, at)
	}
	if n := len(tp.stack); n > 0 {
		tp.stack[n-1].Append(e)
	}
	tp.stack = append(tp.stack, e)
	return e, nil
}

func (tp *treeParser) end(t xml.EndElement) error {
	n := len(tp.stack)
	if n == 0 {
		return malformed("an end tag without a start tag", tp.line())
	}
	top := tp.stack[n-1]
	if top.Prefix != t.Name.Space || top.Local != t.Name.Local {
		return malformed("an end tag does not match its start tag", tp.line())
	}
	tp.stack, tp.scopes = tp.stack[:n-1], tp.scopes[:n-1]
	return nil
}

// wellKnownPrefixes are the prefixes WriteDocument declares for the
// namespaces of elements made with NewElement, when none is in scope: those
// of the DASH-IF CPIX examples.
var wellKnownPrefixes = map[string]string{
	NamespaceCPIX:   "cpix",
	NamespacePSKC:   "pskc",
	NamespaceXMLEnc: "enc",
	NamespaceDSig:   "ds",
}

// WriteDocument writes e as a whole document: the XML declaration (UTF-8),
// the element and a final newline. Elements and attributes are written as
// they were read, prefixes and namespace declarations included; text and
// attribute values are escaped so that they read back the same. An
// element made with NewElement gets a prefix bound to its namespace where
// it stands, or a declaration of one. It refuses (writing nothing) a tree
// holding text that XML cannot carry.
func (e *Element) WriteDocument(w io.Writer) error {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	tw := &treeWriter{b: &buf}
	if err := tw.element(e, 0); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	if err != nil {
		return fmt.Errorf("cpix: write: %w", err)
	}
	return nil
}

type treeWriter struct {
	b      *bytes.Buffer
	scopes []map[string]string
}

func (tw *treeWriter) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return NamespaceXML, true
	}
	for i := len(tw.scopes) - 1; i >= 0; i-- {
		if uri, ok := tw.scopes[i][prefix]; ok {
			return uri, true
		}
	}
	return "", prefix == ""
}

// prefixFor returns a prefix bound to space in the current scope.
func (tw *treeWriter) prefixFor(space string) (string, bool) {
	if uri, _ := tw.lookup(""); uri == space {
		return "", true
	}
	seen := map[string]bool{}
	for i := len(tw.scopes) - 1; i >= 0; i-- {
		for p, uri := range tw.scopes[i] {
			if p == "" || seen[p] {
				continue
			}
			seen[p] = true
			if uri == space {
				if got, _ := tw.lookup(p); got == space {
					return p, true
				}
			}
		}
	}
	return "", false
}

var errWriteChars = errors.New("cpix: write: the document holds characters XML cannot carry")

func (tw *treeWriter) element(e *Element, depth int) error {
	if depth > MaxTreeDepth {
		return fmt.Errorf("cpix: write: elements nest more than %d deep", MaxTreeDepth)
	}
	scope := map[string]string{}
	for _, a := range e.Attr {
		if a.Space == NamespaceXMLNS {
			if a.Prefix == "" {
				scope[""] = a.Value
			} else {
				scope[a.Local] = a.Value
			}
		}
	}
	tw.scopes = append(tw.scopes, scope)
	defer func() { tw.scopes = tw.scopes[:len(tw.scopes)-1] }()
	prefix, attrs := e.Prefix, e.Attr
	if e.made {
		p, ok := tw.prefixFor(e.Space)
		if !ok {
			if e.Space == "" {
				attrs = append([]Attr{{Space: NamespaceXMLNS, Local: "xmlns"}}, attrs...)
				scope[""] = ""
			} else {
				p = wellKnownPrefixes[e.Space]
				if _, taken := tw.lookup(p); p == "" || taken {
					for i := 1; ; i++ {
						p = fmt.Sprintf("ns%d", i)
						if _, taken := tw.lookup(p); !taken {
							break
						}
					}
				}
				attrs = append([]Attr{{Space: NamespaceXMLNS, Prefix: "xmlns", Local: p, Value: e.Space}}, attrs...)
				scope[p] = e.Space
			}
		}
		prefix = p
	}
	name := e.Local
	if prefix != "" {
		name = prefix + ":" + e.Local
	}
	if !validName(name) {
		return fmt.Errorf("cpix: write: %q is not an XML name", clip(name, 32))
	}
	tw.b.WriteByte('<')
	tw.b.WriteString(name)
	for _, a := range attrs {
		an := a.Local
		if a.Prefix != "" {
			an = a.Prefix + ":" + a.Local
		}
		if !validName(an) {
			return fmt.Errorf("cpix: write: %q is not an XML name", clip(an, 32))
		}
		tw.b.WriteByte(' ')
		tw.b.WriteString(an)
		tw.b.WriteString(`="`)
		if err := escapeAttr(tw.b, a.Value); err != nil {
			return err
		}
		tw.b.WriteByte('"')
	}
	if len(e.Children) == 0 {
		tw.b.WriteString("/>")
		return nil
	}
	tw.b.WriteByte('>')
	for _, n := range e.Children {
		switch c := n.(type) {
		case *Element:
			if err := tw.element(c, depth+1); err != nil {
				return err
			}
		case Text:
			if err := escapeText(tw.b, string(c)); err != nil {
				return err
			}
		case Comment:
			if strings.Contains(string(c), "--") || strings.HasSuffix(string(c), "-") || !validChars(string(c)) {
				return errWriteChars
			}
			tw.b.WriteString("<!--")
			tw.b.WriteString(string(c))
			tw.b.WriteString("-->")
		case *ProcInst:
			if !validName(c.Target) || strings.EqualFold(c.Target, "xml") || strings.Contains(c.Inst, "?>") || !validChars(c.Inst) {
				return errWriteChars
			}
			tw.b.WriteString("<?")
			tw.b.WriteString(c.Target)
			if c.Inst != "" {
				tw.b.WriteByte(' ')
				tw.b.WriteString(c.Inst)
			}
			tw.b.WriteString("?>")
		}
	}
	tw.b.WriteString("</")
	tw.b.WriteString(name)
	tw.b.WriteByte('>')
	return nil
}

func validChars(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !isXMLChar(r) {
			return false
		}
	}
	return true
}

// validName reports whether s is an XML name (a QName with at most one
// colon, not at either end).
func validName(s string) bool {
	if s == "" || strings.Count(s, ":") > 1 || s[0] == ':' || s[len(s)-1] == ':' {
		return false
	}
	for i, r := range s {
		switch {
		case r == ':' || r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= 0xC0 && r != 0xD7 && r != 0xF7:
		case i > 0 && (r == '-' || r == '.' || r >= '0' && r <= '9' || r == 0xB7):
		default:
			return false
		}
	}
	return utf8.ValidString(s)
}

// escapeText writes character data: '&', '<' and '>' as entities, CR as a
// character reference (a parser would otherwise turn it into LF).
func escapeText(b *bytes.Buffer, s string) error {
	if !validChars(s) {
		return errWriteChars
	}
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteRune(r)
		}
	}
	return nil
}

// escapeAttr writes an attribute value in double quotes: tab, LF and CR as
// character references, so that attribute-value normalization gives back
// the value.
func escapeAttr(b *bytes.Buffer, s string) error {
	if !validChars(s) {
		return errWriteChars
	}
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteRune(r)
		}
	}
	return nil
}
