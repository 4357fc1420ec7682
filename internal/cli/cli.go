// Package cli is what keydelivery's two commands (the server and kdctl)
// share about their command lines: flag parsing whose errors fit on one
// line and name the nearest flags, suggestions for mistyped names, and flag
// help written with GNU-style double dashes. Standard library only.
package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// UnknownFlagError is an argument naming a flag the command does not
// have. Nearest are the closest defined flags, best first (may be empty).
type UnknownFlagError struct {
	Name    string
	Nearest []string
}

func (e *UnknownFlagError) Error() string {
	msg := "unknown flag --" + e.Name
	if len(e.Nearest) > 0 {
		msg += " (did you mean " + OrList(dashed(e.Nearest)) + "?)"
	}
	return msg
}

// Parse parses args with fs as fs.Parse does, but writes nothing: a bad
// flag is an error of one line (an unknown one an *UnknownFlagError naming
// the nearest defined flags), and -h or --help is flag.ErrHelp, which the
// caller answers with its own help. fs's output is set to io.Discard.
func Parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := checkNames(fs, args); err != nil {
		return err
	}
	return fs.Parse(args)
}

// checkNames walks args as fs.Parse will, up to the first argument that
// is not a flag, and reports the first flag fs does not define.
func checkNames(fs *flag.FlagSet, args []string) error {
	for i := 0; i < len(args); i++ {
		s := args[i]
		if len(s) < 2 || s[0] != '-' || s == "--" {
			return nil
		}
		name := strings.TrimPrefix(s[1:], "-")
		if name == "" || name[0] == '-' || name[0] == '=' {
			return nil // bad syntax: fs.Parse says so
		}
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil {
			if name == "h" || name == "help" {
				return flag.ErrHelp
			}
			return &UnknownFlagError{Name: name, Nearest: Nearest(name, FlagNames(fs))}
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if !hasValue {
			i++ // the flag's value, whatever it looks like
		}
	}
	return nil
}

// FlagNames lists the flags fs defines, in order.
func FlagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// Nearest returns up to three of candidates closest to name: those within
// an edit distance of about a third of name's length (at least 1, at most
// 3), and those name is a prefix of, best first.
func Nearest(name string, candidates []string) []string {
	type scored struct {
		s string
		d int
	}
	limit := min(max(len(name)/3, 1), 3)
	var out []scored
	for _, c := range candidates {
		d := distance(strings.ToLower(name), strings.ToLower(c))
		switch {
		case d <= limit:
		case len(name) >= 3 && strings.HasPrefix(c, name):
			d = limit + 1
		default:
			continue
		}
		out = append(out, scored{c, d})
	}
	slices.SortStableFunc(out, func(a, b scored) int { return a.d - b.d })
	var names []string
	for _, s := range out[:min(len(out), 3)] {
		names = append(names, s.s)
	}
	return names
}

// distance is the optimal string alignment distance of a and b: the edits
// (insert, delete, substitute, swap two neighbours) that turn one into the
// other.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// WriteFlags writes fs's flags as help: "  --name VALUE" (VALUE from the
// usage's back-quoted word, as flag.UnquoteUsage finds it, none for a
// boolean flag), then the usage, indented, and the default when it is not
// the zero value. defaults may override the default shown for a flag, with
// where it came from (e.g. "http://x:1 from KD_SERVER").
func WriteFlags(w io.Writer, fs *flag.FlagSet, defaults map[string]string) {
	fs.VisitAll(func(f *flag.Flag) {
		metavar, usage := flag.UnquoteUsage(f)
		head := "  --" + f.Name
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			head += " " + strings.ToUpper(metavar)
		}
		def, ok := defaults[f.Name]
		if !ok && !isZero(f) {
			def = f.DefValue
		}
		if def != "" {
			usage += " (default " + def + ")"
		}
		if len(head) <= 24 {
			fmt.Fprintf(w, "%-26s%s\n", head, usage)
		} else {
			fmt.Fprintf(w, "%s\n%26s%s\n", head, "", usage)
		}
	})
}

// isZero reports whether f's default is its type's zero value.
func isZero(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "false", "0", "0s", "[]":
		return true
	}
	return false
}

func dashed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "--" + n
	}
	return out
}

// OrList joins names as "a", "a or b", "a, b or c".
func OrList(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
