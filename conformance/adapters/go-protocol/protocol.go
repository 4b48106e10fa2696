// Package protocol is the kpl adapter protocol (conformance/PROTOCOL.md) for Go adapters: the
// request loop and the helpers every adapter needs. Each adapter's go.mod points at this
// folder with a replace directive.
package protocol

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"unicode/utf8"
)

// OneLine keeps an error message on one line.
func OneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// Fail is the answer {"ok": false, "error": msg}.
func Fail(msg string) map[string]any { return map[string]any{"ok": false, "error": OneLine(msg)} }

// KeyField puts a key under name, or name_b64 when it is not valid UTF-8.
func KeyField(m map[string]any, name string, key *string) {
	switch {
	case key == nil:
		m[name] = nil
	case utf8.ValidString(*key):
		m[name] = *key
	default:
		m[name+"_b64"] = base64.StdEncoding.EncodeToString([]byte(*key))
	}
}

// ModuleVersion is the version of a module built into this binary ("?" when unknown).
func ModuleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "?"
}

// GoVersion is the Go toolchain this binary was built with.
func GoVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "?"
}

var out = bufio.NewWriter(os.Stdout)

func answer(v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode appends the newline
		buf.Reset()
		enc.Encode(Fail("adapter: cannot encode answer: " + err.Error()))
	}
	out.Write(buf.Bytes())
	out.Flush()
}

// Serve answers requests from standard input, one JSON line each, until it closes: each
// request is decoded into an R and handed to the operation its "op" names.
func Serve[R any](operations map[string]func(*R) map[string]any) {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var head struct {
				Op string `json:"op"`
			}
			req := new(R)
			if jerr := json.Unmarshal(line, &head); jerr != nil {
				answer(Fail("adapter: bad request: " + jerr.Error()))
			} else if jerr := json.Unmarshal(line, req); jerr != nil {
				answer(Fail("adapter: bad request: " + jerr.Error()))
			} else if op, ok := operations[head.Op]; ok {
				answer(op(req))
			} else {
				answer(Fail(fmt.Sprintf("unsupported op %q", head.Op)))
			}
		}
		if errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "adapter: reading stdin:", err)
			os.Exit(1)
		}
	}
}
