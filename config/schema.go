package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	yaml3 "go.yaml.in/yaml/v3"
)

// The configuration is read in two passes. The first walks the YAML tree
// beside the Go types (their yaml tags are the schema) and finds, in the
// order of the file, every unknown key (with the nearest known one, or what
// to write instead of a blackbox_exporter key), every value of the wrong
// shape or type, and every error of a section's own checks (each section
// with an UnmarshalYAML is decoded where it stands), so that each error
// names its key path, its line and the value, in the words of the file.
// The second decodes the whole file.

// walker checks a YAML tree against a type and records the line of every
// key it passes.
type walker struct {
	lines map[string]int
	// seen holds the aliased nodes already walked as a type: an alias is
	// walked once per type, however often it is used.
	seen map[walkKey]bool
	// types caches each section type's keys.
	types map[reflect.Type]*sectionType
}

// sectionType is what the walk needs of a Go type, found once.
type sectionType struct {
	fields      map[string]reflect.Type // nil when not a section of keys
	unmarshaler bool
}

func (w *walker) section(t reflect.Type) *sectionType {
	st, ok := w.types[t]
	if !ok {
		st = &sectionType{unmarshaler: isUnmarshaler(t)}
		if t.Kind() == reflect.Struct && hasYAMLFields(t) {
			st.fields = yamlFields(t)
		}
		w.types[t] = st
	}
	return st
}

type walkKey struct {
	n *yaml3.Node
	t reflect.Type
}

func newWalker() *walker {
	return &walker{lines: map[string]int{}, seen: map[walkKey]bool{}, types: map[reflect.Type]*sectionType{}}
}

// obsoleteUnmarshaler is the UnmarshalYAML of yaml v2 (which v3 still
// calls): the config's sections and prometheus/common's types have it.
type obsoleteUnmarshaler interface {
	UnmarshalYAML(unmarshal func(any) error) error
}

var (
	obsoleteUnmarshalerType = reflect.TypeFor[obsoleteUnmarshaler]()
	unmarshalerType         = reflect.TypeFor[yaml3.Unmarshaler]()
	durationType            = reflect.TypeFor[model.Duration]()
	tlsVersionType          = reflect.TypeFor[promconfig.TLSVersion]()
	moduleType              = reflect.TypeFor[Module]()
)

// walk checks n, found at path, as a value of type t, and returns the first
// error in the file's order.
func (w *walker) walk(n *yaml3.Node, t reflect.Type, path []string) error {
	switch n.Kind {
	case yaml3.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return w.walk(n.Content[0], t, path)
	case yaml3.AliasNode:
		k := walkKey{n.Alias, t}
		if n.Alias == nil || w.seen[k] {
			return nil
		}
		w.seen[k] = true
		return w.walk(n.Alias, t, path)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.ShortTag() == "!!null" || t.Kind() == reflect.Interface {
		return nil
	}
	switch st := w.section(t); {
	case st.fields != nil:
		if n.Kind != yaml3.MappingNode {
			return w.shapeError(n, path, "keys and values")
		}
		if err := w.walkStruct(n, t, path); err != nil {
			return err
		}
		// The section's own checks, where it stands (the top-level
		// section is decoded by the caller).
		if len(path) > 0 && st.unmarshaler {
			return w.decodeAt(n, t, path)
		}
		return nil
	case t.Kind() == reflect.Map:
		if n.Kind != yaml3.MappingNode {
			return w.shapeError(n, path, "keys and values")
		}
		return w.walkMap(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml3.SequenceNode {
			if n.Kind == yaml3.ScalarNode {
				return w.errorAt(path, n.Line, "%s is one value: write a list, such as [%s]", quote(n.Value), n.Value)
			}
			return w.shapeError(n, path, "a list")
		}
		for i, item := range n.Content {
			if err := w.walk(item, t.Elem(), with(path, Index(i))); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml3.ScalarNode {
		return w.shapeError(n, path, "one value")
	}
	return w.decodeAt(n, t, path)
}

// walkStruct checks the keys of a section: each known, once.
func (w *walker) walkStruct(n *yaml3.Node, t reflect.Type, path []string) error {
	fields := w.section(t).fields
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			if err := w.walkMerge(v, t, path); err != nil {
				return err
			}
			continue
		}
		p := with(path, k.Value)
		if k.Kind != yaml3.ScalarNode {
			return w.errorAt(path, k.Line, "a key must be a plain word, not a list or a section")
		}
		if line, dup := seen[k.Value]; dup {
			return w.errorAt(p, k.Line, "set twice (lines %d and %d): keep one", line, k.Line)
		}
		seen[k.Value] = k.Line
		w.lines[KeyPath(p...)] = k.Line
		ft, ok := fields[k.Value]
		if !ok {
			return w.errorAt(p, k.Line, "%s", unknownKey(t, k.Value))
		}
		if err := w.walk(v, ft, p); err != nil {
			return err
		}
	}
	return nil
}

// walkMerge checks the mappings a merge key (<<: *anchor) brings in.
func (w *walker) walkMerge(v *yaml3.Node, t reflect.Type, path []string) error {
	if v.Kind == yaml3.AliasNode {
		k := walkKey{v.Alias, t}
		if v.Alias == nil || w.seen[k] {
			return nil
		}
		w.seen[k] = true
		v = v.Alias
	}
	switch v.Kind {
	case yaml3.MappingNode:
		return w.walkStruct(v, t, path)
	case yaml3.SequenceNode:
		for _, item := range v.Content {
			if err := w.walkMerge(item, t, path); err != nil {
				return err
			}
		}
		return nil
	}
	return w.errorAt(path, v.Line, "<< must merge a section (<<: *anchor)")
}

// walkMap checks a map whose keys are names (module names, phases).
func (w *walker) walkMap(n *yaml3.Node, t reflect.Type, path []string) error {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml3.ScalarNode || k.ShortTag() == "!!merge" {
			return w.errorAt(path, k.Line, "a name here must be a plain word, not a list, a section or <<")
		}
		p := with(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			return w.errorAt(p, k.Line, "set twice (lines %d and %d): keep one", line, k.Line)
		}
		seen[k.Value] = k.Line
		w.lines[KeyPath(p...)] = k.Line
		if err := w.walk(v, t.Elem(), p); err != nil {
			return err
		}
	}
	return nil
}

// decodeAt decodes n as a t, as the final decoding will, and says what is
// wrong in the file's words.
func (w *walker) decodeAt(n *yaml3.Node, t reflect.Type, path []string) error {
	v := reflect.New(t)
	err := n.Decode(v.Interface())
	if err == nil {
		return nil
	}
	var ke *KeyError
	if errors.As(err, &ke) {
		err = AtKey(ke, path...)
		w.setLine(err, n.Line)
		return err
	}
	var te *yaml3.TypeError
	if n.Kind == yaml3.ScalarNode && (errors.As(err, &te) || t == durationType || t == tlsVersionType) {
		return w.errorAt(path, n.Line, "%s", scalarMessage(t, path, n.Value))
	}
	if errors.As(err, &te) { // not expected after the walk; never show Go's types
		return w.errorAt(path, n.Line, "this value does not fit here")
	}
	return &KeyError{Path: path, Line: n.Line, Err: err}
}

// setLine gives a KeyError the line of its key, or else def.
func (w *walker) setLine(err error, def int) {
	var ke *KeyError
	if errors.As(err, &ke) && ke.Line == 0 {
		ke.Line = def
		if l, ok := w.lines[KeyPath(ke.Path...)]; ok {
			ke.Line = l
		}
	}
}

func (w *walker) errorAt(path []string, line int, format string, args ...any) error {
	return &KeyError{Path: slices.Clone(path), Line: line, Err: fmt.Errorf(format, args...)}
}

// shapeError: a list or section where want belongs, or one value where a
// list or section belongs.
func (w *walker) shapeError(n *yaml3.Node, path []string, want string) error {
	got := "one value " + quote(n.Value)
	switch n.Kind {
	case yaml3.SequenceNode:
		got = "a list"
	case yaml3.MappingNode:
		got = "keys and values"
	}
	return w.errorAt(path, n.Line, "want %s here, not %s", want, got)
}

// scalarMessage says why value is not a t.
func scalarMessage(t reflect.Type, path []string, value string) string {
	v := quote(value)
	switch {
	case t == durationType && value != "" && strings.Trim(value, "0123456789.") == "":
		return v + " is not a duration: write it with a unit, such as " + value + "s"
	case t == durationType:
		return v + " is not a duration: write a number and a unit, such as 10s, 1m30s or 2h"
	case t == tlsVersionType:
		return v + " is not a TLS version: write TLS10, TLS11, TLS12 or TLS13"
	case t.Kind() == reflect.Bool:
		return v + " is not true or false"
	case len(path) > 0 && path[len(path)-1] == "port":
		return v + " is not a port number from 1 to 65535"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return v + " is not a whole number"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return fmt.Sprintf("%s is not a whole number from 0 to %d", v, uint64(1)<<(t.Bits()-1)*2-1)
	}
	return v + " does not fit here"
}

// quote writes a value from the file for an error message: quoted, with
// control characters escaped, clipped to 80 bytes.
func quote(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80]) + "..."
	}
	return strconv.Quote(s)
}

func with(path []string, key string) []string {
	return append(slices.Clip(path), key)
}

// yamlFields maps the keys of a section (yaml tags; inline sections
// flattened) to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		if len(f.Index) > 1 || (!f.IsExported() && !f.Anonymous) {
			continue // reached through an inline field, below
		}
		addField(fields, f)
	}
	return fields
}

func addField(fields map[string]reflect.Type, f reflect.StructField) {
	tag := f.Tag.Get("yaml")
	if tag == "-" {
		return
	}
	name, opts, _ := strings.Cut(tag, ",")
	if slices.Contains(strings.Split(opts, ","), "inline") {
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			for k, v := range yamlFields(ft) {
				fields[k] = v
			}
		}
		return
	}
	if !f.IsExported() {
		return
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	fields[name] = f.Type
}

// keyNames lists a section's keys in the order of its fields.
func keyNames(t reflect.Type) []string {
	var names []string
	for _, f := range reflect.VisibleFields(t) {
		if len(f.Index) > 1 {
			continue
		}
		one := map[string]reflect.Type{}
		addField(one, f)
		keys := make([]string, 0, len(one))
		for k := range one {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		names = append(names, keys...)
	}
	return names
}

func hasYAMLFields(t reflect.Type) bool {
	for _, f := range reflect.VisibleFields(t) {
		if _, ok := f.Tag.Lookup("yaml"); ok {
			return true
		}
	}
	return false
}

func isUnmarshaler(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(obsoleteUnmarshalerType) || p.Implements(unmarshalerType)
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError is a YAML syntax error, with its line.
func syntaxError(err error) error {
	msg := err.Error()
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &KeyError{Line: line, Err: errors.New("not valid YAML: " + m[2])}
	}
	return &KeyError{Err: errors.New("not valid YAML: " + strings.TrimPrefix(msg, "yaml: "))}
}
