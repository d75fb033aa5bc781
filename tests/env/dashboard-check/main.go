// dashboard-check validates Grafana dashboard JSON files against the dashboard schema types
// of grafana-foundation-sdk (generated from Grafana's published schema), without Grafana.
//
// Usage: dashboard-check FILE...
//
// For every file it prints one line per problem, "FILE: JSON.PATH: message", and exits 1 if
// there was any; otherwise it prints "ok FILE (N panels, M queries)" per file and exits 0.
//
// The SDK's strict decoder already rejects unknown fields, wrong types and missing required
// fields in the dashboard, panels, panel options and field-config "custom" blocks. Three
// places it is lenient are tightened here, because a mistake there is silently ignored by
// Grafana too: a panel type without schema (its options would be decoded as a free-form
// map), a query whose datasource type has no schema (kept as an opaque bag), and the rest
// of fieldConfig (decoded with plain json.Unmarshal, which ignores unknown keys).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-check FILE...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, file := range os.Args[1:] {
		raw, err := os.ReadFile(file)
		if err != nil {
			fmt.Printf("%s: %v\n", file, err)
			failed = true
			continue
		}
		problems, panels, queries := check(raw)
		for _, p := range problems {
			fmt.Printf("%s: %s\n", file, p)
		}
		if len(problems) > 0 {
			failed = true
		} else {
			fmt.Printf("ok %s (%d panels, %d queries)\n", file, panels, queries)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// check returns the problems found (each starting with its JSON path) and the number of
// panels and queries it looked at.
func check(raw []byte) (problems []string, panels, queries int) {
	var d dashboard.Dashboard
	if err := d.UnmarshalJSONStrict(raw); err != nil {
		problems = append(problems, describe("", err)...)
	}
	if err := d.Validate(); err != nil {
		problems = append(problems, describe("", err)...)
	}

	// The SDK's own panel decoding stops at the first bad panel, so the extra checks walk
	// the raw panels themselves.
	var shape struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		return append(problems, "$: "+err.Error()), 0, 0
	}
	for i, rawPanel := range shape.Panels {
		path := "panels[" + strconv.Itoa(i) + "]"
		var head struct {
			Type   string            `json:"type"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(rawPanel, &head); err != nil {
			problems = append(problems, path+": "+err.Error())
			continue
		}
		if head.Type == "row" {
			// Collapsed rows hold their panels; expanded rows have an empty list.
			for j, child := range head.Panels {
				n, p := checkPanel(path+".panels["+strconv.Itoa(j)+"]", child)
				problems = append(problems, p...)
				panels++
				queries += n
			}
			continue
		}
		n, p := checkPanel(path, rawPanel)
		problems = append(problems, p...)
		panels++
		queries += n
	}
	return problems, panels, queries
}

// checkPanel returns the number of queries of the panel and what the SDK's strict decoder
// lets through.
func checkPanel(path string, raw json.RawMessage) (queries int, problems []string) {
	// The lenient decoder, for the panel type and the query variants it resolves.
	var p dashboard.Panel
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, []string{path + ": " + err.Error()}
	}
	if _, ok := cog.ConfigForPanelcfgVariant(p.Type); !ok {
		problems = append(problems, fmt.Sprintf("%s.type: %q has no schema in the SDK", path, p.Type))
	}
	for i, t := range p.Targets {
		if _, unknown := t.(variants.UnknownDataquery); unknown {
			problems = append(problems, fmt.Sprintf(
				"%s.targets[%d]: the query's datasource type has no schema in the SDK", path, i))
		}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return len(p.Targets), append(problems, path+": "+err.Error())
	}
	if fc, ok := fields["fieldConfig"]; ok {
		// "custom" is panel-specific and already checked strictly by the SDK; the rest must
		// be the dashboard schema's FieldConfigSource exactly.
		dec := json.NewDecoder(bytes.NewReader(fc))
		dec.DisallowUnknownFields()
		var source dashboard.FieldConfigSource
		if err := dec.Decode(&source); err != nil {
			problems = append(problems, path+".fieldConfig: "+err.Error())
		}
	}
	return len(p.Targets), problems
}

// describe flattens the SDK's errors into "path: message" lines.
func describe(prefix string, err error) []string {
	var build cog.BuildErrors
	if errors.As(err, &build) {
		out := make([]string, 0, len(build))
		for _, e := range build {
			out = append(out, jsonPath(join(prefix, e.Path), e.Message))
		}
		return out
	}
	var one *cog.BuildError
	if errors.As(err, &one) {
		return []string{join(prefix, one.Path) + ": " + one.Message}
	}
	if prefix == "" {
		prefix = "$"
	}
	return []string{prefix + ": " + err.Error()}
}

// jsonPath turns the SDK's "a.b.TypeName: unexpected field 'x'" into "a.b.x: unexpected
// field", so every line names a JSON path of the input.
func jsonPath(path, message string) string {
	const pre, post = "unexpected field '", "'"
	if strings.HasPrefix(message, pre) && strings.HasSuffix(message, post) {
		field := message[len(pre) : len(message)-len(post)]
		parent, last := "", path
		if i := strings.LastIndex(path, "."); i >= 0 {
			parent, last = path[:i], path[i+1:]
		}
		if last != "" && unicode.IsUpper(rune(last[0])) {
			return join(parent, field) + ": unexpected field"
		}
	}
	return path + ": " + message
}

func join(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	default:
		return prefix + "." + path
	}
}
