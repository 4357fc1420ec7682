package cpix

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sameTree compares two trees by what they mean and how they were written:
// names, prefixes, attributes in order, children.
func sameTree(a, b *Element) bool {
	if a.Space != b.Space || a.Local != b.Local || len(a.Attr) != len(b.Attr) || len(a.Children) != len(b.Children) {
		return false
	}
	if !a.made && !b.made && a.Prefix != b.Prefix {
		return false
	}
	for i := range a.Attr {
		if a.Attr[i] != b.Attr[i] {
			return false
		}
	}
	for i := range a.Children {
		switch x := a.Children[i].(type) {
		case *Element:
			y, ok := b.Children[i].(*Element)
			if !ok || !sameTree(x, y) {
				return false
			}
		case *ProcInst:
			y, ok := b.Children[i].(*ProcInst)
			if !ok || *x != *y {
				return false
			}
		default:
			if a.Children[i] != b.Children[i] {
				return false
			}
		}
	}
	return true
}

func treeRoundTrip(t *testing.T, doc []byte) (*Element, []byte) {
	t.Helper()
	tree, err := ParseTree(bytes.NewReader(doc), 1<<20)
	if err != nil {
		t.Fatalf("ParseTree: %v", err)
	}
	var out bytes.Buffer
	if err := tree.WriteDocument(&out); err != nil {
		t.Fatalf("WriteDocument: %v", err)
	}
	again, err := ParseTree(bytes.NewReader(out.Bytes()), 1<<20)
	if err != nil {
		t.Fatalf("ParseTree of what was written: %v\n%s", err, out.Bytes())
	}
	if !sameTree(tree, again) {
		t.Fatalf("the written tree reads back differently:\n%s", out.Bytes())
	}
	return tree, out.Bytes()
}

// TestTreeRoundTrip: every test document reads, writes and reads back the
// same, with its prefixes, namespace declarations, unknown elements,
// comments and attributes; and Read finds the same keys in what was
// written as in the original.
func TestTreeRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	for _, name := range files {
		doc, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(name), func(t *testing.T) {
			_, out := treeRoundTrip(t, doc)
			d1, err1 := Read(bytes.NewReader(doc), 1<<20)
			d2, err2 := Read(bytes.NewReader(out), 1<<20)
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("Read: original %v, written %v", err1, err2)
			}
			if err1 != nil {
				return
			}
			if d1.ContentID != d2.ContentID || len(d1.Keys) != len(d2.Keys) {
				t.Fatalf("Read: original %+v, written %+v", d1, d2)
			}
			for i := range d1.Keys {
				if d1.Keys[i].KID != d2.Keys[i].KID || !bytes.Equal(d1.Keys[i].Value, d2.Keys[i].Value) || !bytes.Equal(d1.Keys[i].IV, d2.Keys[i].IV) {
					t.Fatalf("key %d differs", i)
				}
			}
		})
	}
}

func TestTreeKeepsWhatWasWritten(t *testing.T) {
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<!-- before the root: dropped -->
<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" xmlns:v="urn:example:vendor" contentId="a&amp;b&#9;c" version="2.3" v:extra="1">
  <!-- a comment --><?pi some data?>
  <cpix:ContentKeyList><cpix:ContentKey kid="k" commonEncryptionScheme="cenc"/></cpix:ContentKeyList>
  <v:Thing xmlns="urn:example:default"><Inner a="x&quot;y"><![CDATA[<raw> & text]]></Inner></v:Thing>
</cpix:CPIX>`
	tree, out := treeRoundTrip(t, []byte(doc))
	if !tree.Is(NamespaceCPIX, "CPIX") || tree.Prefix != "cpix" {
		t.Fatalf("root %+v", tree)
	}
	if v, _ := tree.AttrValue("contentId"); v != "a&b\tc" {
		t.Fatalf("contentId %q", v)
	}
	thing := tree.Child("urn:example:vendor", "Thing")
	inner := thing.Child("urn:example:default", "Inner")
	if inner == nil || inner.Text() != "<raw> & text" {
		t.Fatalf("inner %+v", inner)
	}
	for _, want := range []string{`v:extra="1"`, `<!-- a comment -->`, `<?pi some data?>`, `<v:Thing xmlns="urn:example:default">`,
		`a="x&quot;y"`, `&lt;raw&gt; &amp; text`, `contentId="a&amp;b&#x9;c"`, `<cpix:ContentKey kid="k" commonEncryptionScheme="cenc"/>`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("written document lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "before the root") {
		t.Errorf("a comment outside the root was written")
	}
}

// TestTreeNewElements: elements made with NewElement get the prefix bound
// to their namespace where they stand, the default namespace when it is
// theirs, or a declaration.
func TestTreeNewElements(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		want      []string
	}{
		{"prefixed document", `<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><cpix:ContentKey/></cpix:CPIX>`,
			[]string{`<cpix:ContentKey><cpix:Data><pskc:Secret><pskc:PlainValue>AAA=</pskc:PlainValue></pskc:Secret></cpix:Data><x/></cpix:ContentKey>`}},
		{"default namespace, pskc undeclared", `<CPIX xmlns="urn:dashif:org:cpix"><ContentKey/></CPIX>`,
			[]string{`<ContentKey><Data><pskc:Secret xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><pskc:PlainValue>AAA=</pskc:PlainValue></pskc:Secret></Data><x xmlns=""/></ContentKey>`}},
		{"prefix pskc taken by something else", `<c:CPIX xmlns:c="urn:dashif:org:cpix" xmlns:pskc="urn:other"><c:ContentKey/></c:CPIX>`,
			[]string{`<c:Data><ns1:Secret xmlns:ns1="urn:ietf:params:xml:ns:keyprov:pskc"><ns1:PlainValue>`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tree, err := ParseTree(strings.NewReader(c.doc), 1<<10)
			if err != nil {
				t.Fatal(err)
			}
			ck := tree.Elements()[0]
			data := NewElement(NamespaceCPIX, "Data")
			secret := NewElement(NamespacePSKC, "Secret")
			plain := NewElement(NamespacePSKC, "PlainValue")
			plain.SetText("AAA=")
			secret.Append(plain)
			data.Append(secret)
			ck.Append(data)
			ck.Append(NewElement("", "x"))
			var out bytes.Buffer
			if err := tree.WriteDocument(&out); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("want %s in\n%s", w, out.String())
				}
			}
			again, err := ParseTree(&out, 1<<10)
			if err != nil {
				t.Fatal(err)
			}
			got := again.Elements()[0].Child(NamespaceCPIX, "Data").Child(NamespacePSKC, "Secret").Child(NamespacePSKC, "PlainValue")
			if got == nil || got.Text() != "AAA=" {
				t.Fatalf("read back: %+v", got)
			}
		})
	}
}

func TestTreeRefuses(t *testing.T) {
	deep := strings.Repeat("<a>", MaxTreeDepth+1) + strings.Repeat("</a>", MaxTreeDepth+1)
	for name, c := range map[string]struct{ doc, reason string }{
		"empty":                {"", ReasonMalformedXML},
		"only a comment":       {"<!-- x -->", ReasonMalformedXML},
		"DTD":                  {`<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>`, ReasonDTDNotAllowed},
		"not UTF-8":            {`<?xml version="1.0" encoding="ISO-8859-1"?><x/>`, ReasonUnsupportedEncoding},
		"unbound prefix":       {`<p:x/>`, ReasonMalformedXML},
		"unbound attr prefix":  {`<x p:a="1"/>`, ReasonMalformedXML},
		"repeated attribute":   {`<x a="1" a="2"/>`, ReasonMalformedXML},
		"same attr two ways":   {`<x xmlns:p="u" xmlns:q="u" p:a="1" q:a="2"/>`, ReasonMalformedXML},
		"mismatched end":       {`<x></y>`, ReasonMalformedXML},
		"prefix mismatch":      {`<p:x xmlns:p="u" xmlns:q="u"></q:x>`, ReasonMalformedXML},
		"unclosed":             {`<x><y>`, ReasonMalformedXML},
		"two roots":            {`<x/><y/>`, ReasonMalformedXML},
		"text outside":         {`<x/>text`, ReasonMalformedXML},
		"too deep":             {deep, ReasonInvalidStructure},
		"empty prefix binding": {`<x xmlns:p=""/>`, ReasonMalformedXML},
	} {
		_, err := ParseTree(strings.NewReader(c.doc), 1<<20)
		var re *ReadError
		if !errors.As(err, &re) || len(re.Problems) != 1 || re.Problems[0].Reason != c.reason {
			t.Errorf("%s: %v, want %s", name, err, c.reason)
		}
	}
	if _, err := ParseTree(strings.NewReader("<x>"+strings.Repeat("a", 100)+"</x>"), 50); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	bad := NewElement(NamespaceCPIX, "X")
	bad.SetText("nul \x00")
	if err := bad.WriteDocument(&bytes.Buffer{}); err == nil {
		t.Error("text XML cannot carry was written")
	}
}

// FuzzParseTree: ParseTree never panics; whatever it accepts, it writes,
// and what it writes reads back to the same tree.
func FuzzParseTree(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{`<a xmlns="u" xmlns:p="v"><p:b p:c="&#xD;"/><!--c--><?t i?></a>`, `<x a="&#9;&#10;"> &amp; </x>`, `<p:x xmlns:p="u"/>`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, err := ParseTree(bytes.NewReader(data), 64<<10)
		if err != nil {
			var re *ReadError
			if !errors.Is(err, ErrTooLarge) && !errors.As(err, &re) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		var out bytes.Buffer
		if err := tree.WriteDocument(&out); err != nil {
			return // a name or comment encoding/xml accepts and XML forbids
		}
		again, err := ParseTree(bytes.NewReader(out.Bytes()), 1<<20)
		if err != nil {
			t.Fatalf("written document does not read back: %v\n%q\n%q", err, data, out.Bytes())
		}
		if !sameTree(tree, again) {
			t.Fatalf("round trip changed the tree:\n%q\n%q", data, out.Bytes())
		}
	})
}
