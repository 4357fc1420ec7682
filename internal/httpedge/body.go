package httpedge

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The kinds of BodyError; match them with errors.Is.
var (
	// ErrBodySyntax: the body is not JSON.
	ErrBodySyntax = errors.New("httpedge: body is not valid JSON")
	// ErrBodyNotObject: the body is JSON but not one object.
	ErrBodyNotObject = errors.New("httpedge: body is not a JSON object")
	// ErrBodyTrailing: more follows the object.
	ErrBodyTrailing = errors.New("httpedge: body holds more than one JSON value")
	// ErrUnknownMember: a member the request does not have.
	ErrUnknownMember = errors.New("httpedge: unknown member")
	// ErrDuplicateMember: a member named twice.
	ErrDuplicateMember = errors.New("httpedge: duplicate member")
	// ErrMemberType: a member whose value has the wrong type (or that its
	// type's own decoder refused: then Cause says why).
	ErrMemberType = errors.New("httpedge: member of the wrong type")
)

// BodyError is a request body DecodeJSON refused. Its text names the member
// at fault and never quotes a value, so it may be answered as it is.
type BodyError struct {
	// Kind is one of the ErrBody and ErrMember errors above.
	Kind error
	// Member is the top-level member at fault ("" for the body as a whole).
	Member string
	// Offset is the byte offset of a syntax error.
	Offset int64
	// Want describes the JSON the member takes ("a string", "an array of
	// strings", "a number", "true or false"), for ErrMemberType; "" when its
	// type decodes itself (then Cause explains).
	Want string
	// Cause is the error of a member's own decoder (an UnmarshalJSON
	// method), which explains the form it wants; nil otherwise.
	Cause error
}

func (e *BodyError) Error() string {
	if e.Member != "" {
		return fmt.Sprintf("%v %q", e.Kind, e.Member)
	}
	return e.Kind.Error()
}

// Is reports whether target is e's Kind.
func (e *BodyError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the member decoder's own error, if any.
func (e *BodyError) Unwrap() error { return e.Cause }

// DecodeJSON decodes body, which must be one JSON object (an empty body is
// an empty object), into v, a pointer to a struct. Member names are matched
// exactly, as written in the struct's json tags; a member the struct does
// not have, a member named twice, and trailing data are refused, as is text
// that is not UTF-8. Every refusal is a *BodyError.
//
// This is how every request body of the admin plane is read: one way, by
// exact names, so a body means the same thing to this server as to any
// other reader.
func DecodeJSON(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	return decodeOne(body, '{', v)
}

// DecodeJSONElement decodes elem, one element of an array EachJSON read
// (so already one well-formed JSON value), which must be an object, into v,
// a pointer to a struct, with the rules of DecodeJSON. It skips the
// re-reading of the value DecodeJSON does on a whole body.
func DecodeJSONElement(elem []byte, v any) error {
	if jsontext.Value(elem).Kind() != '{' {
		return &BodyError{Kind: ErrBodyNotObject}
	}
	if err := json.Unmarshal(elem, v, json.RejectUnknownMembers(true)); err != nil {
		return memberError(err, v)
	}
	return nil
}

// DecodeJSONArray decodes body, which must be one JSON array, into v (a
// pointer to a slice), with the same rules as DecodeJSON. Decode the
// elements into RawJSON to check each on its own.
func DecodeJSONArray(body []byte, v any) error {
	return decodeOne(bytes.TrimSpace(body), '[', v)
}

// EachJSON reads body, which must be one JSON array, and calls fn with
// each element's JSON text in turn, without copying the body or holding
// more than one element: a large array costs the body and one element, not
// a parsed copy of every element. elem is valid only during the call. The
// array is checked as DecodeJSONArray checks it (syntax, a name twice in an
// element, trailing data) as far as it is read; an error from fn stops the
// reading and is returned as it is. Every other refusal is a *BodyError.
func EachJSON(body []byte, fn func(i int, elem []byte) error) error {
	dec := jsontext.NewDecoder(bytes.NewBuffer(bytes.TrimSpace(body)))
	tok, err := dec.ReadToken()
	if err != nil {
		return syntaxError(err)
	}
	if tok.Kind() != '[' {
		return &BodyError{Kind: ErrBodyNotObject}
	}
	for i := 0; dec.PeekKind() != ']'; i++ {
		val, err := dec.ReadValue()
		if err != nil {
			return syntaxError(err)
		}
		if err := fn(i, val); err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return syntaxError(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return &BodyError{Kind: ErrBodyTrailing}
	}
	return nil
}

// decodeOne decodes body, which must be one JSON value of the given kind
// ('{' or '['), into v.
func decodeOne(body []byte, kind jsontext.Kind, v any) error {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	val, err := dec.ReadValue()
	if err != nil {
		return syntaxError(err)
	}
	val = val.Clone() // valid only until the next read
	if val.Kind() != kind {
		return &BodyError{Kind: ErrBodyNotObject}
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return &BodyError{Kind: ErrBodyTrailing}
	}
	if err := json.Unmarshal(val, v, json.RejectUnknownMembers(true)); err != nil {
		return memberError(err, v)
	}
	return nil
}

func syntaxError(err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		if errors.Is(se.Err, jsontext.ErrDuplicateName) {
			return &BodyError{Kind: ErrDuplicateMember, Member: topMember(se.JSONPointer)}
		}
		return &BodyError{Kind: ErrBodySyntax, Offset: se.ByteOffset}
	}
	return &BodyError{Kind: ErrBodySyntax}
}

func memberError(err error, v any) error {
	var se *json.SemanticError
	if !errors.As(err, &se) {
		return syntaxError(err)
	}
	member := topMember(se.JSONPointer)
	switch {
	case errors.Is(se.Err, json.ErrUnknownName):
		return &BodyError{Kind: ErrUnknownMember, Member: member}
	case member == "":
		return &BodyError{Kind: ErrBodyNotObject}
	}
	var cause error
	if se.Err != nil && !errors.As(se.Err, new(*json.SemanticError)) {
		cause = se.Err
	}
	be := &BodyError{Kind: ErrMemberType, Member: member, Cause: cause}
	if cause == nil {
		be.Want = describe(memberType(v, member))
	}
	return be
}

// memberType is the Go type of the member name of the struct v points to.
func memberType(v any, name string) reflect.Type {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name || tag == "" && f.Name == name {
			return f.Type
		}
	}
	return nil
}

// describe says in words what JSON a Go type takes.
func describe(t reflect.Type) string {
	if t == nil {
		return ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if e := describe(t.Elem()); strings.HasPrefix(e, "a ") {
			return "an array of " + e[2:] + "s"
		}
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return ""
}

// topMember is the first token of a JSON pointer: the top-level member.
func topMember(p jsontext.Pointer) string {
	for tok := range p.Tokens() {
		return tok
	}
	return ""
}

// RawJSON is a member kept as its JSON text, to be decoded later (for
// example the {"d": {...}} wrapper of OData verbose bodies).
type RawJSON []byte

// UnmarshalJSON keeps a copy of b.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// DecodeBase64 decodes s, which must be the canonical standard base64 of
// exactly len(dst) bytes, into dst. A spelling that decodes to the same
// bytes but is not the canonical one (stray padding bits, missing padding,
// line breaks) is refused, so one value has one spelling. The error says
// what is wrong in words and never quotes s; dst is untouched on error.
func DecodeBase64(dst []byte, s string) error {
	if want := base64.StdEncoding.EncodedLen(len(dst)); len(s) != want {
		return fmt.Errorf("it is %d characters, want %d", len(s), want)
	}
	buf := make([]byte, len(dst)+2)
	defer clear(buf)
	n, err := base64.StdEncoding.Strict().Decode(buf, []byte(s))
	if err != nil {
		return errors.New("it is not standard base64")
	}
	if n != len(dst) {
		return fmt.Errorf("it decodes to %d bytes", n)
	}
	enc := make([]byte, len(s))
	defer clear(enc)
	base64.StdEncoding.Encode(enc, buf[:n])
	if string(enc) != s {
		return errors.New("it is not the canonical encoding of its bytes")
	}
	copy(dst, buf[:n])
	return nil
}
