package resp

import "strconv"

// AppendError appends "-<msg>\r\n". Each CR and LF in msg becomes a space,
// as Redis does to error text (which may quote client bytes), so the reply
// is always one line and cannot be read as more than one reply.
func AppendError(dst []byte, msg string) []byte {
	return appendLine(dst, '-', msg)
}

// AppendSimple appends "+<s>\r\n", with CR and LF in s made spaces as in
// AppendError.
func AppendSimple(dst []byte, s string) []byte {
	return appendLine(dst, '+', s)
}

func appendLine(dst []byte, kind byte, text string) []byte {
	dst = append(dst, kind)
	start := len(dst)
	dst = append(dst, text...)
	for i := start; i < len(dst); i++ {
		if dst[i] == '\r' || dst[i] == '\n' {
			dst[i] = ' '
		}
	}
	return append(dst, '\r', '\n')
}

// AppendInt appends ":<n>\r\n".
func AppendInt(dst []byte, n int64) []byte {
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

// AppendBulk appends "$<len>\r\n<b>\r\n".
func AppendBulk(dst []byte, b []byte) []byte {
	dst = appendHeader(dst, '$', int64(len(b)))
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

// AppendBulkString is AppendBulk for a string.
func AppendBulkString(dst []byte, s string) []byte {
	dst = appendHeader(dst, '$', int64(len(s)))
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// AppendNull appends the null of the given protocol: "$-1" for RESP2, "_" for RESP3.
func AppendNull(dst []byte, proto int) []byte {
	if proto >= 3 {
		return append(dst, '_', '\r', '\n')
	}
	return append(dst, '$', '-', '1', '\r', '\n')
}

// AppendArray appends an array header of n elements.
func AppendArray(dst []byte, n int) []byte { return appendHeader(dst, '*', int64(n)) }

// AppendMap appends a map header of n pairs for RESP3, or an array header of
// 2n elements for RESP2, as Redis does.
func AppendMap(dst []byte, n int, proto int) []byte {
	if proto >= 3 {
		return appendHeader(dst, '%', int64(n))
	}
	return appendHeader(dst, '*', int64(2*n))
}

// AppendSet appends a set header (RESP3) or an array header (RESP2).
func AppendSet(dst []byte, n int, proto int) []byte {
	if proto >= 3 {
		return appendHeader(dst, '~', int64(n))
	}
	return appendHeader(dst, '*', int64(n))
}

// AppendCommand encodes args as a multibulk request.
func AppendCommand(dst []byte, args ...[]byte) []byte {
	dst = appendHeader(dst, '*', int64(len(args)))
	for _, a := range args {
		dst = AppendBulk(dst, a)
	}
	return dst
}

// AppendCommandStrings is AppendCommand for string arguments.
func AppendCommandStrings(dst []byte, args ...string) []byte {
	dst = appendHeader(dst, '*', int64(len(args)))
	for _, a := range args {
		dst = AppendBulkString(dst, a)
	}
	return dst
}

func appendHeader(dst []byte, kind byte, n int64) []byte {
	dst = append(dst, kind)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}
