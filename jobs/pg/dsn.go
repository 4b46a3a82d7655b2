package pg

import (
	"strings"
)

// passwordMask replaces passwords in connection strings shown or logged.
const passwordMask = "*****"

// MaskDSN returns dsn with every password (the URL's user info, and
// password or sslpassword parameters in either form) replaced by "*****",
// for display and logs. It follows the parsing rules of libpq (and pgx);
// where a malformed string leaves the password's end unclear, it masks
// generously rather than leak.
func MaskDSN(dsn string) string {
	for _, scheme := range []string{"postgresql://", "postgres://"} {
		if rest, ok := strings.CutPrefix(dsn, scheme); ok {
			return scheme + maskURL(rest)
		}
	}
	return maskKeywordValue(dsn)
}

// isSecretKey reports whether a connection parameter holds a secret.
func isSecretKey(key string) bool {
	return key == "password" || key == "sslpassword"
}

// maskURL masks the part of a connection URL after its scheme.
func maskURL(p string) string {
	var b strings.Builder
	userinfo := false
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		userinfo = true
		user, pw, hasPassword := strings.Cut(p[:i], ":")
		b.WriteString(user)
		if hasPassword {
			b.WriteByte(':')
			if pw != "" {
				b.WriteString(passwordMask)
			}
		}
		b.WriteByte('@')
		p = p[i+1:]
	}

	q := urlQueryStart(p)
	beforeQuery := p
	if q >= 0 {
		beforeQuery = p[:q]
	}
	hosts, _, _ := strings.Cut(beforeQuery, "/")
	if strings.IndexByte(p, '@') >= 0 && (strings.IndexByte(hosts, '@') >= 0 || !numericPorts(hosts, !userinfo)) {
		// A password with an unescaped '/', '?', '@' or ':' has spilled
		// out of the user info: mask everything up to the last '@'.
		last := strings.LastIndexByte(p, '@')
		start := strings.IndexByte(p[:last], ':')
		if userinfo || start < 0 {
			start = -1
		}
		b.WriteString(p[:start+1])
		b.WriteString(passwordMask)
		p = p[last:]
		q = urlQueryStart(p)
	}

	if q < 0 {
		b.WriteString(p)
		return b.String()
	}
	b.WriteString(p[:q+1])
	for i, pair := range strings.Split(p[q+1:], "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		rawKey, value, hasValue := strings.Cut(pair, "=")
		if hasValue && value != "" && isSecretKey(percentDecode(rawKey)) {
			b.WriteString(rawKey + "=" + passwordMask)
			continue
		}
		b.WriteString(pair)
	}
	return b.String()
}

// urlQueryStart returns the index of the '?' that starts the query of p
// (what follows the user info), or -1, skipping bracketed IPv6 hosts as the
// URL parser does.
func urlQueryStart(p string) int {
	i := 0
	for i < len(p) {
		switch p[i] {
		case '?':
			return i
		case '/':
			if j := strings.IndexByte(p[i:], '?'); j >= 0 {
				return i + j
			}
			return -1
		case '[':
			if j := strings.IndexByte(p[i:], ']'); j >= 0 {
				i += j + 1
				continue
			}
		}
		i++
	}
	return -1
}

// numericPorts reports whether every host in a URL's host list has a
// numeric port, or none, or (unless strict) an empty one: anything else may
// be a stray piece of password.
func numericPorts(hosts string, strict bool) bool {
	for _, h := range strings.Split(hosts, ",") {
		if strings.HasPrefix(h, "[") {
			end := strings.IndexByte(h, ']')
			if end < 0 {
				return false
			}
			h = h[end+1:]
		}
		_, port, ok := strings.Cut(h, ":")
		if !ok {
			continue
		}
		if port == "" && strict {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
	}
	return true
}

// percentDecode decodes %XX escapes, leaving malformed ones as they are.
func percentDecode(s string) string {
	s = strings.Trim(s, " ")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// maskKeywordValue masks a key=value connection string. Where it stops
// making sense of the string, it masks the rest.
func maskKeywordValue(s string) string {
	var b strings.Builder
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			b.WriteByte(s[i])
			i++
		}
		if i == len(s) {
			return b.String()
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			b.WriteString(passwordMask)
			return b.String()
		}
		key := strings.TrimRight(s[i:i+eq], " \t\n\r\v\f")
		if strings.ContainsAny(key, " \t\n\r\v\f") {
			b.WriteString(passwordMask)
			return b.String()
		}
		secret := isSecretKey(key)
		b.WriteString(s[i : i+eq+1])
		i += eq + 1
		for i < len(s) && isSpace(s[i]) {
			b.WriteByte(s[i])
			i++
		}
		if i == len(s) {
			return b.String()
		}
		start := i
		if s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				// Unterminated: the rest may all be the value.
				b.WriteString(passwordMask)
				return b.String()
			}
			i++ // closing quote
			if secret && i-start > 2 {
				b.WriteString("'" + passwordMask + "'")
			} else {
				b.WriteString(s[start:i])
			}
			continue
		}
		for i < len(s) && !isSpace(s[i]) {
			if s[i] == '\\' {
				i++
			}
			i++
		}
		if i > len(s) {
			i = len(s)
		}
		if secret {
			b.WriteString(passwordMask)
		} else {
			b.WriteString(s[start:i])
		}
	}
}
