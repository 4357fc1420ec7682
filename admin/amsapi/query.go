package amsapi

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/keystore"
)

// The OData system query options of the AMS API, as AMS clients used them
// on ContentKeys (OData v3):
//
//	$filter       eq and ne on Id, Name, ContentKeyType and ProtectionKeyId,
//	              with and, or and parentheses; literals 'text' (a quote
//	              doubled inside), integers and null
//	$orderby      Created and Name, each asc (default) or desc, comma-separated
//	$select       a comma-separated list of properties, or *
//	$top, $skip   paging, after $filter and $orderby
//	$inlinecount  allpages (the count of every matching entity in the answer) or none
//	$count        true (the same, as OData v4 spells it) or false
//
// and the $count path segment (ContentKeys/$count), which answers the
// count alone as text.

// Limits of what a client may ask for.
const (
	maxFilterLen   = 4096 // bytes of $filter
	maxComparisons = 64   // comparisons in one $filter
	maxDepth       = 32   // nested parentheses
	// maxMatched caps the entities a $filter, $orderby or count query
	// gathers before paging: sorting needs them all at once.
	maxMatched = 100000
)

// query is a checked set of query options.
type query struct {
	filter  filterExpr // nil: every entity
	orderBy []orderKey
	selects []string // nil: every property
	top     int
	skip    int
	count   bool // $inlinecount=allpages or $count=true
}

// scans reports whether the query needs every matching entity before it
// can page (a filter, an order or a count).
func (q *query) scans() bool { return q.filter != nil || len(q.orderBy) > 0 || q.count }

// The options each kind of request understands.
var (
	entityOptions     = []string{"$select"}
	collectionOptions = []string{"$filter", "$orderby", "$select", "$top", "$skip", "$inlinecount", "$count"}
	countOptions      = []string{"$filter"}
)

// parseQuery reads and checks the query options allowed; any other system
// query option ($expand...) is refused rather than silently ignored.
func parseQuery(c *plane.Call, allowed []string) (query, error) {
	q := query{top: amsMaxTop}
	for name, vs := range c.QueryParams() {
		if !strings.HasPrefix(name, "$") {
			continue
		}
		if !slices.Contains(allowed, name) {
			return q, plane.Invalid("unsupported_query_option", "the query option %q is not supported here (supported: %s)", plane.Truncate(name, 32), strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return q, plane.Invalid("unsupported_query_option", "the query option %s is given %d times", name, len(vs))
		}
	}
	var err error
	if v := c.Query("$filter"); v != "" {
		if q.filter, err = parseFilter(v); err != nil {
			return q, err
		}
	}
	if v := c.Query("$orderby"); v != "" {
		if q.orderBy, err = parseOrderBy(v); err != nil {
			return q, err
		}
	}
	if v, ok := c.QueryParams()["$select"]; ok {
		if q.selects, err = parseSelect(v[0]); err != nil {
			return q, err
		}
	}
	if v := c.Query("$top"); v != "" {
		if q.top, err = strconv.Atoi(v); err != nil || q.top < 1 || q.top > amsMaxTop {
			return q, plane.Invalid("invalid_top", "$top must be a number from 1 to %d", amsMaxTop)
		}
	}
	if v := c.Query("$skip"); v != "" {
		if q.skip, err = strconv.Atoi(v); err != nil || q.skip < 0 || q.skip > amsMaxSkip {
			return q, plane.Invalid("invalid_skip", "$skip must be a number from 0 to %d (page larger stores with GET /api/keys?cursor=)", amsMaxSkip)
		}
	}
	switch v := c.Query("$inlinecount"); v {
	case "", "none":
	case "allpages":
		q.count = true
	default:
		return q, plane.Invalid("invalid_inlinecount", "$inlinecount must be allpages or none")
	}
	switch v := c.Query("$count"); v {
	case "", "false":
	case "true":
		q.count = true
	default:
		return q, plane.Invalid("invalid_count", "$count must be true or false (or use the path segment ContentKeys/$count)")
	}
	return q, nil
}

// The ContentKey properties, in the entity's order.
var contentKeyProperties = []string{"Id", "Created", "LastModified", "ContentKeyType", "EncryptedContentKey", "Name",
	"ProtectionKeyId", "ProtectionKeyType", "Checksum", "AuthorizationPolicyId"}

func parseSelect(v string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "*":
			return nil, nil
		case !slices.Contains(contentKeyProperties, p):
			return nil, plane.Invalid("invalid_select", "$select names %q, which is not a ContentKey property (%s, or *)", plane.Truncate(p, 64), strings.Join(contentKeyProperties, ", "))
		case !slices.Contains(out, p):
			out = append(out, p)
		}
	}
	return out, nil
}

// orderKey is one $orderby key.
type orderKey struct {
	property string // Created or Name
	desc     bool
}

func parseOrderBy(v string) ([]orderKey, error) {
	var out []orderKey
	for _, item := range strings.Split(v, ",") {
		f := strings.Fields(item)
		if len(f) == 0 || len(f) > 2 || f[0] != "Created" && f[0] != "Name" || len(f) == 2 && f[1] != "asc" && f[1] != "desc" {
			return nil, plane.Invalid("invalid_orderby", "$orderby takes Created or Name, each optionally followed by asc or desc, separated by commas")
		}
		out = append(out, orderKey{property: f[0], desc: len(f) == 2 && f[1] == "desc"})
	}
	return out, nil
}

// compareKeys orders a and b by keys, then by KID.
func compareKeys(keys []orderKey, a, b *keystore.Key) int {
	for _, k := range keys {
		var c int
		if k.property == "Created" {
			c = a.Created.Compare(b.Created)
		} else {
			c = strings.Compare(a.Name, b.Name)
		}
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(string(a.ID[:]), string(b.ID[:]))
}

// filterExpr is a parsed $filter.
type filterExpr interface {
	match(k *keystore.Key, protectionID string) bool
}

type orExpr struct{ left, right filterExpr }
type andExpr struct{ left, right filterExpr }

func (e orExpr) match(k *keystore.Key, p string) bool {
	return e.left.match(k, p) || e.right.match(k, p)
}
func (e andExpr) match(k *keystore.Key, p string) bool {
	return e.left.match(k, p) && e.right.match(k, p)
}

// comparison is "property eq|ne literal".
type comparison struct {
	property string
	negate   bool // ne
	null     bool // the literal is null
	text     string
	number   int
}

func (e comparison) match(k *keystore.Key, protectionID string) bool {
	var eq bool
	switch e.property {
	case "Id":
		id, err := keystore.ParseKeyID(e.text)
		eq = !e.null && err == nil && id == k.ID
	case "Name":
		eq = !e.null && e.text == k.Name // an absent name is "", never null
	case "ContentKeyType":
		eq = !e.null && e.number == int(k.Type)
	case "ProtectionKeyId":
		if e.null {
			eq = protectionID == ""
		} else {
			eq = protectionID != "" && strings.EqualFold(e.text, protectionID)
		}
	}
	return eq != e.negate
}

// filterProperties are the properties $filter compares, with whether each
// is a string.
var filterProperties = map[string]bool{"Id": true, "Name": true, "ContentKeyType": false, "ProtectionKeyId": true}

// token kinds of $filter.
const (
	tokIdent = iota
	tokString
	tokNumber
	tokOpen
	tokClose
	tokEnd
)

type token struct {
	kind int
	text string // identifier, or the string literal's value
	pos  int    // byte offset, for errors
}

// lexFilter splits a $filter into tokens.
func lexFilter(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			out = append(out, token{kind: tokOpen, pos: i})
			i++
		case c == ')':
			out = append(out, token{kind: tokClose, pos: i})
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			for i++; ; i++ {
				if i >= len(s) {
					return nil, filterError(start, "a string literal is not closed with '")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i++
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
			}
			out = append(out, token{kind: tokString, text: b.String(), pos: start})
		case c == '-' || c >= '0' && c <= '9':
			start := i
			for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			}
			out = append(out, token{kind: tokNumber, text: s[start:i], pos: start})
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			start := i
			for i++; i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9'); i++ {
			}
			out = append(out, token{kind: tokIdent, text: s[start:i], pos: start})
		default:
			return nil, filterError(i, fmt.Sprintf("unexpected character %q", rune(c)))
		}
	}
	return append(out, token{kind: tokEnd, pos: len(s)}), nil
}

func filterError(pos int, what string) error {
	return plane.Invalid("invalid_filter", "$filter at offset %d: %s; supported: eq and ne on Id, Name, ContentKeyType and ProtectionKeyId, with and, or and parentheses, e.g. Name eq 'movie' and ContentKeyType eq 4", pos, what)
}

// filterParser is a recursive-descent parser of the $filter subset.
type filterParser struct {
	toks        []token
	i           int
	comparisons int
}

func parseFilter(s string) (filterExpr, error) {
	if len(s) > maxFilterLen {
		return nil, plane.Invalid("invalid_filter", "$filter is longer than %d bytes", maxFilterLen)
	}
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks}
	e, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEnd {
		return nil, filterError(t.pos, "unexpected "+describe(t))
	}
	return e, nil
}

func (p *filterParser) peek() token { return p.toks[p.i] }

// next returns the next token; at the end it stays there.
func (p *filterParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEnd {
		p.i++
	}
	return t
}

func (p *filterParser) keyword(word string) bool {
	if t := p.peek(); t.kind == tokIdent && t.text == word {
		p.i++
		return true
	}
	return false
}

func (p *filterParser) or(depth int) (filterExpr, error) {
	left, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		right, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		left = orExpr{left, right}
	}
	return left, nil
}

func (p *filterParser) and(depth int) (filterExpr, error) {
	left, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		right, err := p.primary(depth)
		if err != nil {
			return nil, err
		}
		left = andExpr{left, right}
	}
	return left, nil
}

func (p *filterParser) primary(depth int) (filterExpr, error) {
	t := p.peek()
	if t.kind == tokOpen {
		if depth >= maxDepth {
			return nil, filterError(t.pos, fmt.Sprintf("more than %d nested parentheses", maxDepth))
		}
		p.i++
		e, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokClose {
			return nil, filterError(c.pos, "expected ), found "+describe(c))
		}
		return e, nil
	}
	return p.comparison()
}

// comparison reads "property op literal" (or "literal op property").
func (p *filterParser) comparison() (filterExpr, error) {
	p.comparisons++
	a := p.next()
	if p.comparisons > maxComparisons {
		return nil, filterError(a.pos, fmt.Sprintf("more than %d comparisons", maxComparisons))
	}
	op := p.next()
	if op.kind != tokIdent || op.text != "eq" && op.text != "ne" {
		if op.kind == tokIdent && slices.Contains([]string{"gt", "ge", "lt", "le", "has", "not", "add", "sub"}, op.text) {
			return nil, filterError(op.pos, "the operator "+op.text+" is not supported (eq and ne are)")
		}
		return nil, filterError(op.pos, "expected eq or ne after "+describe(a)+", found "+describe(op))
	}
	b := p.next()
	prop, lit := a, b
	if _, isProp := filterProperties[b.text]; b.kind == tokIdent && isProp {
		prop, lit = b, a
	}
	isString, ok := filterProperties[prop.text]
	if prop.kind != tokIdent || !ok {
		return nil, filterError(prop.pos, describe(prop)+" is not a property $filter compares (Id, Name, ContentKeyType, ProtectionKeyId)")
	}
	e := comparison{property: prop.text, negate: op.text == "ne"}
	switch {
	case lit.kind == tokIdent && lit.text == "null":
		e.null = true
	case isString && lit.kind == tokString:
		e.text = lit.text
	case !isString && lit.kind == tokNumber:
		n, err := strconv.Atoi(lit.text)
		if err != nil {
			return nil, filterError(lit.pos, "the number "+plane.Truncate(lit.text, 16)+" is out of range")
		}
		e.number = n
	case isString:
		return nil, filterError(lit.pos, prop.text+" is compared with a string literal in quotes, found "+describe(lit))
	default:
		return nil, filterError(lit.pos, prop.text+" is compared with an integer, found "+describe(lit))
	}
	return e, nil
}

// describe names a token for an error, quoting at most 32 bytes of it.
func describe(t token) string {
	switch t.kind {
	case tokIdent:
		return strconv.Quote(plane.Truncate(t.text, 32))
	case tokString:
		return "the string " + strconv.Quote(plane.Truncate(t.text, 32))
	case tokNumber:
		return "the number " + plane.Truncate(t.text, 16)
	case tokOpen:
		return "("
	case tokClose:
		return ")"
	}
	return "the end"
}
