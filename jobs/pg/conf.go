package pg

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// confQuote quotes v as a postgresql.conf string value.
func confQuote(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// validSettingName reports whether name looks like a configuration
// parameter: letters, digits, underscores and dots (for extensions).
func validSettingName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// appendSettings appends settings, in name order, to the configuration file
// path under a comment: later lines win in postgresql.conf.
func appendSettings(path, comment string, settings map[string]string) error {
	names := make([]string, 0, len(settings))
	for name, value := range settings {
		if !validSettingName(name) {
			return fmt.Errorf("settings: invalid parameter name %q", name)
		}
		if strings.ContainsAny(value, "\n\r\x00") {
			return fmt.Errorf("settings: value of %s contains a line break or NUL", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("\n# " + comment + "\n")
	for _, name := range names {
		fmt.Fprintf(&b, "%s = %s\n", name, confQuote(settings[name]))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("settings: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("settings: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	return nil
}

// readSetting returns the last value of name in the configuration files, in
// the order given (so postgresql.auto.conf goes last), and whether it was
// found. include directives are not followed.
func readSetting(name string, paths ...string) (string, bool, error) {
	var value string
	var found bool
	for _, path := range paths {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", false, fmt.Errorf("read setting: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := parseConfLine(sc.Text())
			if ok && strings.EqualFold(k, name) {
				value, found = v, true
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return "", false, fmt.Errorf("read setting: %s: %w", path, err)
		}
	}
	return value, found, nil
}

// parseConfLine splits a postgresql.conf line into name and value.
func parseConfLine(line string) (name, value string, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false
	}
	end := strings.IndexAny(line, " \t=")
	if end < 0 {
		return "", "", false
	}
	name = line[:end]
	rest := strings.TrimLeft(line[end:], " \t")
	rest = strings.TrimPrefix(rest, "=")
	rest = strings.TrimLeft(rest, " \t")
	if strings.HasPrefix(rest, "'") {
		var b strings.Builder
		for i := 1; i < len(rest); i++ {
			c := rest[i]
			switch {
			case c == '\'' && i+1 < len(rest) && rest[i+1] == '\'':
				b.WriteByte('\'')
				i++
			case c == '\'':
				return name, b.String(), true
			case c == '\\' && i+1 < len(rest):
				b.WriteByte(rest[i+1])
				i++
			default:
				b.WriteByte(c)
			}
		}
		return "", "", false
	}
	if i := strings.IndexAny(rest, " \t#"); i >= 0 {
		rest = rest[:i]
	}
	return name, rest, true
}
