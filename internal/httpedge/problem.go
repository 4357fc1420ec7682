package httpedge

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Problem is an RFC 9457 problem detail with the members both planes add:
// a stable Code from a documented set, the Reason that refines it, and the
// RequestID that ties the answer to the server's log line. The remaining
// members are extensions that a refusal fills when it names what was at
// fault; each is omitted when empty.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	Reason    string `json:"reason,omitempty"`
	KID       string `json:"kid,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// KIDs names the keys at fault when a request for several keys is
	// refused (the requester named them itself).
	KIDs []string `json:"kids,omitempty"`
	// Problems names the bad entries of a refused batch (the first ones, at
	// most a hundred); ProblemCount is how many there are in all.
	Problems     []EntryProblem `json:"problems,omitempty"`
	ProblemCount int            `json:"problemCount,omitempty"`
	// Conflicts names the KIDs a batch found stored with another key;
	// Results is the outcome of every entry of that batch.
	Conflicts []string `json:"conflicts,omitempty"`
	Results   any      `json:"results,omitempty"`
}

// EntryProblem names one bad entry of a batch (an import).
type EntryProblem struct {
	Index  int    `json:"index"`
	KID    string `json:"kid,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// NewProblem returns the problem for status with its code, reason and
// detail, typed about:blank and titled with the status text.
func NewProblem(status int, code, reason, detail string) Problem {
	return Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code, Reason: reason, Detail: detail}
}

// ProblemType is the media type of a problem body.
const ProblemType = "application/problem+json"

// WriteProblem writes p as the answer to r: its status, Content-Type
// application/problem+json, and the JSON body (none for HEAD). The body is
// encoded as echo's JSON answers are (one line, newline-terminated). Every
// text member that may quote the request (detail, kid, kids, problems) is
// redacted first (Redact): an error body never echoes a credential.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) error {
	p.Detail, p.KID = Redact(p.Detail), Redact(p.KID)
	for i := range p.KIDs {
		p.KIDs[i] = Redact(p.KIDs[i])
	}
	for i := range p.Problems {
		p.Problems[i].KID, p.Problems[i].Detail = Redact(p.Problems[i].KID), Redact(p.Problems[i].Detail)
	}
	w.Header().Set("Content-Type", ProblemType)
	w.WriteHeader(p.Status)
	if r.Method == http.MethodHead {
		return nil
	}
	return json.NewEncoder(w).Encode(p)
}

// InvalidKIDDetail is the detail of every answer to a malformed KID.
const InvalidKIDDetail = "the key ID must be a UUID such as 0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f (upper case, braces, no hyphens and the nb:kid:UUID: prefix are accepted)"

// Outcome is what a handler leaves for the access log: the refusal reason
// (also in the problem body) and the internal error, which is logged but
// never answered. Each plane keeps the request's Outcome in its framework's
// request context.
type Outcome struct {
	Reason string
	Err    error
}

// noStore is the one Cache-Control value of every answer: keys, licenses
// and errors alike are never cached. The slice is shared, never modified.
var noStore = []string{"no-store"}

// SetNoStore sets Cache-Control: no-store on h without allocating.
func SetNoStore(h http.Header) { h["Cache-Control"] = noStore }

// RetryAfter is the Retry-After header value for d: whole seconds,
// rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(int((d+time.Second-1)/time.Second), 1))
}
