//! Decoding of `/api/v1/series` bodies for discovery.
//!
//! Discovery only needs, per series, the metric name and the set of label names, and a
//! relist of a million series brings a body of a few hundred megabytes. [`SeriesScanner`]
//! takes that body chunk by chunk as it arrives and never holds more of it than the chunk
//! being read: it walks the bytes once, skips label values without decoding them, and keeps
//! the raw (still escaped) name and label names of the series being read. A series equal to
//! the one before it (the common case, as Prometheus sorts its answer) costs a comparison;
//! other series are looked up among the distinct ones seen so far. Names and label names are
//! unescaped and checked to be UTF-8 once per distinct series, at the end.
//!
//! The accepted input is the JSON grammar (RFC 8259) with Prometheus' envelope
//! `{"status": ..., "data": [{label: value, ...}, ...], "errorType": ..., "error": ...}`:
//! other envelope members and label values of any JSON type are skipped, `data` may be
//! `null` or missing, and `status`, `errorType`, `error` and `__name__` must be strings.

use std::collections::HashSet;

use promhpa_core::backend::SeriesInfo;

/// How deeply values may nest, as in serde_json.
const MAX_DEPTH: usize = 128;

/// What a value is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The whole body: an object.
    Envelope,
    /// One of the envelope's string members.
    Field(Field),
    /// `data`: `null` or an array of series.
    Data,
    /// One element of `data`: an object of labels.
    Series,
    /// The value of `__name__`: a string.
    Name,
    /// Anything, skipped.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Status,
    ErrorType,
    Error,
}

/// An open object or array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Envelope,
    Data,
    Series,
    SkippedObject,
    SkippedArray,
}

/// Where the characters of the string being read go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// A skipped value.
    SkippedValue,
    /// A key of a skipped object.
    SkippedKey,
    /// A key of the envelope.
    EnvelopeKey,
    /// A label name.
    LabelName,
    /// The value of `__name__`.
    Name,
    /// The value of an envelope string member.
    Field(Field),
}

/// Where inside an escape sequence the string being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// Just after `\`.
    Backslash,
    /// In `\uXXXX`, with this many hex digits still to come.
    Hex(u8),
}

/// Where inside a number the scanner is (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Minus,
    Zero,
    Integer,
    Point,
    Fraction,
    Exponent,
    ExponentSign,
    ExponentDigits,
}

impl Number {
    /// The state after `b`, or `None` when `b` does not continue the number.
    fn next(self, b: u8) -> Option<Number> {
        use Number::*;
        match (self, b) {
            (Minus, b'0') => Some(Zero),
            (Minus, b'1'..=b'9') => Some(Integer),
            (Integer, b'0'..=b'9') => Some(Integer),
            (Zero | Integer, b'.') => Some(Point),
            (Point | Fraction, b'0'..=b'9') => Some(Fraction),
            (Zero | Integer | Fraction, b'e' | b'E') => Some(Exponent),
            (Exponent, b'+' | b'-') => Some(ExponentSign),
            (Exponent | ExponentSign | ExponentDigits, b'0'..=b'9') => Some(ExponentDigits),
            _ => None,
        }
    }

    /// Whether the number may end here.
    fn complete(self) -> bool {
        matches!(
            self,
            Number::Zero | Number::Integer | Number::Fraction | Number::ExponentDigits
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a value.
    Value(Role),
    /// Just after `[`: a value or `]`.
    FirstElement(Role),
    /// Just after `{`: a key or `}`.
    FirstKey,
    /// After `,` in an object.
    Key,
    /// After a key.
    Colon(Role),
    /// After a value inside an object or array.
    CommaOrClose,
    /// Inside a string.
    Str(Sink, Escape),
    Number(Number),
    /// Inside `true`, `false` or `null`, with these bytes still to come.
    Literal(&'static [u8]),
    /// After the envelope: only whitespace may follow.
    End,
}

/// Reduces a `/api/v1/series` body, fed in chunks of any size, to the distinct metric names
/// with their label-name sets.
pub(crate) struct SeriesScanner {
    state: State,
    stack: Vec<Container>,
    /// Bytes fed before the current chunk, for error positions.
    consumed: u64,
    /// Whether the string being read had an escape sequence.
    escaped: bool,
    /// The raw envelope key being read.
    envelope_key: Vec<u8>,
    /// The raw envelope string member being read.
    field: Vec<u8>,
    status: Option<Vec<u8>>,
    error_type: Option<Vec<u8>>,
    error: Option<Vec<u8>>,
    seen_data: bool,
    /// The raw name of the series being read.
    name: Vec<u8>,
    /// The raw label names of the series being read, each followed by a zero byte (which a
    /// JSON string cannot hold unescaped).
    labels: Vec<u8>,
    /// Where in `labels` the label name being read starts.
    label_start: usize,
    /// Whether the series being read had a `__name__` already: a later one replaces it, and
    /// the replaced one must still be a valid string.
    named: bool,
    /// The series read before, when there was one.
    previous: Option<Previous>,
    /// Distinct series as raw name, a 1 byte, raw labels.
    distinct: HashSet<Vec<u8>>,
    /// Where a series' entry in `distinct` is put together to be looked up.
    key: Vec<u8>,
}

impl Default for SeriesScanner {
    fn default() -> Self {
        SeriesScanner {
            state: State::Value(Role::Envelope),
            stack: Vec::new(),
            consumed: 0,
            escaped: false,
            envelope_key: Vec::new(),
            field: Vec::new(),
            status: None,
            error_type: None,
            error: None,
            seen_data: false,
            name: Vec::new(),
            labels: Vec::new(),
            label_start: 0,
            named: false,
            previous: None,
            distinct: HashSet::new(),
            key: Vec::new(),
        }
    }
}

/// The series read before the current one.
#[derive(Default)]
struct Previous {
    /// Raw name.
    name: Vec<u8>,
    /// Raw label names, each followed by a zero byte.
    labels: Vec<u8>,
    /// Where in `labels` each zero byte is.
    ends: Vec<usize>,
}

/// Where the string whose characters start at `at` in `s` ends (its closing quote), when
/// that is in `s` and the string holds nothing but plain characters and well-formed simple
/// escapes; `None` otherwise.
fn string_end(s: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += plain_run(&s[at..]);
        match s.get(at)? {
            b'"' => return Some(at),
            b'\\' => match s.get(at + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
                b'u' if s.get(at + 2..at + 6)?.iter().all(u8::is_ascii_hexdigit) => at += 6,
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// Bit 7 of every byte of a word of eight bytes.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// Bit 7 set in the lowest byte of `word` (little-endian) that is `"`, `\` or a control
/// character, when there is one; bits above it may be set too (a borrow carries on).
fn special_bytes(word: u64) -> u64 {
    // `"` and the control characters are the bytes that XOR 2 makes less than 0x21.
    let flipped = word ^ (ONES * 0x02);
    let quote_or_control = flipped.wrapping_sub(ONES * 0x21) & !flipped;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (quote_or_control | zero_backslash) & HIGH_BITS
}

fn is_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The length of the plain run of string characters at the start of `s`.
fn plain_run(s: &[u8]) -> usize {
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let special = special_bytes(u64::from_le_bytes(bytes));
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    for &b in words.remainder() {
        if is_special(b) {
            return at;
        }
        at += 1;
    }
    at
}

/// Eight bytes of `s` from `at` as a word.
fn word8(s: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// Four bytes of `s` from `at` as a word.
fn word4(s: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&s[at..at + 4]);
    u32::from_le_bytes(bytes)
}

/// `a == b` for the short slices label names are, without a call to `memcmp`: whole words,
/// the last one overlapping.
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if word8(a, at) != word8(b, at) {
                return false;
            }
            at += 8;
        }
        word8(a, n - 8) == word8(b, n - 8)
    } else if n >= 4 {
        word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl SeriesScanner {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Read the next bytes of the body.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        let result = self.scan(chunk);
        self.consumed += chunk.len() as u64;
        result.map_err(|(at, what)| {
            format!(
                "decoding series response: {what} at byte {}",
                self.consumed - chunk.len() as u64 + at as u64
            )
        })
    }

    /// The distinct series of a complete body, sorted; an error body, a body that ended
    /// early or one without `status` is an error.
    pub(crate) fn finish(self) -> Result<Vec<SeriesInfo>, String> {
        let bad = |what: String| format!("decoding series response: {what}");
        if self.state != State::End {
            return Err(bad(format!(
                "the body ended early, after {} bytes",
                self.consumed
            )));
        }
        let mut out = Vec::with_capacity(self.distinct.len());
        for raw in &self.distinct {
            let (name, labels) = raw
                .iter()
                .position(|&b| b == 1)
                .map(|at| (&raw[..at], &raw[at + 1..]))
                .unwrap_or((raw.as_slice(), &[]));
            let name = unescape(name).map_err(|e| bad(format!("metric name: {e}")))?;
            // Every label name ends with a zero byte: the last piece is always empty.
            let mut pieces: Vec<&[u8]> = labels.split(|&b| b == 0).collect();
            pieces.pop();
            let label_names = pieces
                .into_iter()
                .map(|l| unescape(l).map_err(|e| bad(format!("label name: {e}"))))
                .collect::<Result<_, _>>()?;
            out.push(SeriesInfo { name, label_names });
        }
        let text = |raw: &Option<Vec<u8>>, what: &str| -> Result<String, String> {
            raw.as_deref()
                .map_or(Ok(String::new()), unescape)
                .map_err(|e| bad(format!("{what}: {e}")))
        };
        let status = text(&self.status, "status")?;
        let error_type = text(&self.error_type, "errorType")?;
        let error = text(&self.error, "error")?;
        if self.status.is_none() {
            return Err(bad("missing field `status`".to_string()));
        }
        if status != "success" {
            return Err(format!("series request failed: {error_type}: {error}"));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The state after a value ends.
    fn after_value(&self) -> State {
        if self.stack.is_empty() {
            State::End
        } else {
            State::CommaOrClose
        }
    }

    fn push(&mut self, container: Container) -> Result<(), &'static str> {
        if self.stack.len() >= MAX_DEPTH {
            return Err("values nested too deeply");
        }
        self.stack.push(container);
        Ok(())
    }

    /// The bytes of a string in `sink` go here (`None`: they are dropped).
    fn sink(&mut self, sink: Sink) -> Option<&mut Vec<u8>> {
        match sink {
            Sink::SkippedValue | Sink::SkippedKey => None,
            Sink::EnvelopeKey => Some(&mut self.envelope_key),
            Sink::LabelName => Some(&mut self.labels),
            Sink::Name => Some(&mut self.name),
            Sink::Field(_) => Some(&mut self.field),
        }
    }

    /// A string value starts; `Err` names what was expected instead.
    fn string_value(&mut self, role: Role) -> Result<Sink, &'static str> {
        match role {
            Role::Ignored => Ok(Sink::SkippedValue),
            Role::Name => {
                if self.named && unescape(&self.name).is_err() {
                    return Err("invalid metric name");
                }
                self.named = true;
                self.name.clear();
                Ok(Sink::Name)
            }
            Role::Field(f) => {
                self.field.clear();
                Ok(Sink::Field(f))
            }
            other => Err(expected(other)),
        }
    }

    /// A key starts in the innermost object.
    fn key_sink(&mut self) -> Sink {
        match self.stack.last() {
            Some(Container::Envelope) => {
                self.envelope_key.clear();
                Sink::EnvelopeKey
            }
            Some(Container::Series) => {
                self.label_start = self.labels.len();
                Sink::LabelName
            }
            _ => Sink::SkippedKey,
        }
    }

    /// A string ends: the state that follows.
    fn end_string(&mut self, sink: Sink) -> Result<State, &'static str> {
        Ok(match sink {
            Sink::SkippedValue | Sink::Name => self.after_value(),
            Sink::SkippedKey => State::Colon(Role::Ignored),
            Sink::Field(f) => {
                let value = Some(std::mem::take(&mut self.field));
                match f {
                    Field::Status => self.status = value,
                    Field::ErrorType => self.error_type = value,
                    Field::Error => self.error = value,
                }
                self.after_value()
            }
            Sink::EnvelopeKey => {
                let key = if self.escaped {
                    unescape(&self.envelope_key).map_err(|_| "invalid envelope key")?
                } else {
                    std::str::from_utf8(&self.envelope_key)
                        .map_err(|_| "invalid UTF-8 in an envelope key")?
                        .to_string()
                };
                let (role, seen) = match key.as_str() {
                    "status" => (Role::Field(Field::Status), self.status.is_some()),
                    "errorType" => (Role::Field(Field::ErrorType), self.error_type.is_some()),
                    "error" => (Role::Field(Field::Error), self.error.is_some()),
                    "data" => (Role::Data, self.seen_data),
                    _ => (Role::Ignored, false),
                };
                if seen {
                    return Err("duplicate envelope field");
                }
                if role == Role::Data {
                    self.seen_data = true;
                }
                State::Colon(role)
            }
            Sink::LabelName => {
                let label = &self.labels[self.label_start..];
                let is_name = if self.escaped {
                    unescape(label).map_err(|_| "invalid label name")? == "__name__"
                } else {
                    label == b"__name__"
                };
                if is_name {
                    self.labels.truncate(self.label_start);
                    State::Colon(Role::Name)
                } else {
                    self.labels.push(0);
                    State::Colon(Role::Ignored)
                }
            }
        })
    }

    /// A series' `}`: remember it unless it was seen already.
    fn end_series(&mut self) {
        if let Some(p) = &self.previous {
            if same(&p.name, &self.name) && p.labels == self.labels {
                return;
            }
        }
        self.key.clear();
        self.key.extend_from_slice(&self.name);
        self.key.push(1);
        self.key.extend_from_slice(&self.labels);
        if !self.distinct.contains(self.key.as_slice()) {
            self.distinct.insert(self.key.clone());
        }
        let p = self.previous.get_or_insert_with(Previous::default);
        std::mem::swap(&mut p.name, &mut self.name);
        std::mem::swap(&mut p.labels, &mut self.labels);
        p.ends.clear();
        p.ends.extend(
            p.labels
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == 0)
                .map(|(at, _)| at),
        );
    }

    /// The series object whose `{` was just read, when it lies whole in `s` (the bytes after
    /// the `{`) and is written the way Prometheus writes it: no whitespace, string values,
    /// no escapes in label names. Returns the length read up to and including its `}`, or
    /// `None` (nothing read or kept) for the general path to read the object instead.
    ///
    /// While the series' name and label names are the previous series', they are only
    /// compared with those where they are expected, not searched for nor copied.
    fn whole_series(&mut self, s: &[u8], at: usize) -> Option<usize> {
        let previous = self.previous.as_ref();
        // `Some(k)`: the label names so far are the previous series' first `k`.
        let mut matched = previous.map(|_| 0);
        let mut name: Option<&[u8]> = None;
        self.labels.clear();
        let mut i = at;
        if s.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                if s.get(i) != Some(&b'"') {
                    return None;
                }
                i += 1;
                // `__name__`, the expected label name, or another.
                if s.get(i + 8) == Some(&b'"') && same(&s[i..i + 8], b"__name__") {
                    if name.is_some() {
                        // A second `__name__`: the general path checks the one it replaces.
                        return None;
                    }
                    i += 9;
                    if s.get(i..i + 2)? != b":\"" {
                        return None;
                    }
                    i += 2;
                    let start = i;
                    match previous {
                        Some(p)
                            if s.get(i + p.name.len()) == Some(&b'"')
                                && same(&s[i..i + p.name.len()], &p.name) =>
                        {
                            i += p.name.len();
                        }
                        _ => i = string_end(s, i)?,
                    }
                    name = Some(&s[start..i]);
                } else {
                    let expected = match (matched, previous) {
                        (Some(k), Some(p)) if k < p.ends.len() => {
                            let start = if k == 0 { 0 } else { p.ends[k - 1] + 1 };
                            Some(&p.labels[start..p.ends[k]])
                        }
                        _ => None,
                    };
                    match expected {
                        Some(key)
                            if s.get(i + key.len()) == Some(&b'"')
                                && same(&s[i..i + key.len()], key) =>
                        {
                            i += key.len() + 1;
                            matched = matched.map(|k| k + 1);
                        }
                        _ => {
                            let start = i;
                            i += plain_run(&s[i..]);
                            if s.get(i) != Some(&b'"') {
                                return None;
                            }
                            if let (Some(k), Some(p)) = (matched, previous) {
                                let copied = if k == 0 { 0 } else { p.ends[k - 1] + 1 };
                                self.labels.extend_from_slice(&p.labels[..copied]);
                                matched = None;
                            }
                            self.labels.extend_from_slice(&s[start..i]);
                            self.labels.push(0);
                            i += 1;
                        }
                    }
                    if s.get(i..i + 2)? != b":\"" {
                        return None;
                    }
                    i = string_end(s, i + 2)?;
                }
                // The value's closing quote.
                i += 1;
                match s.get(i)? {
                    b',' => i += 1,
                    b'}' => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        let name = name.unwrap_or_default();
        if let (Some(k), Some(p)) = (matched, previous) {
            if k == p.ends.len() && same(&p.name, name) {
                return Some(i);
            }
            let copied = if k == 0 { 0 } else { p.ends[k - 1] + 1 };
            self.labels.extend_from_slice(&p.labels[..copied]);
        }
        self.name.clear();
        self.name.extend_from_slice(name);
        self.end_series();
        Some(i)
    }

    /// `}` or `]`: the state that follows.
    fn close(&mut self) -> State {
        if self.stack.pop() == Some(Container::Series) {
            self.end_series();
        }
        self.after_value()
    }

    /// Scan `chunk`; an error comes with its offset in the chunk.
    fn scan(&mut self, chunk: &[u8]) -> Result<(), (usize, &'static str)> {
        let mut state = self.state;
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            match state {
                State::Str(sink, escape) => match escape {
                    Escape::None => {
                        let run = plain_run(&chunk[i..]);
                        if let Some(buf) = self.sink(sink) {
                            buf.extend_from_slice(&chunk[i..i + run]);
                        }
                        i += run;
                        let Some(&b) = chunk.get(i) else { break };
                        i += 1;
                        match b {
                            b'"' => state = self.end_string(sink).map_err(|e| (i - 1, e))?,
                            b'\\' => {
                                self.escaped = true;
                                if let Some(buf) = self.sink(sink) {
                                    buf.push(b);
                                }
                                state = State::Str(sink, Escape::Backslash);
                            }
                            _ => return Err((i - 1, "control character in a string")),
                        }
                    }
                    Escape::Backslash => {
                        let next = match b {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Escape::None,
                            b'u' => Escape::Hex(4),
                            _ => return Err((i, "invalid escape in a string")),
                        };
                        if let Some(buf) = self.sink(sink) {
                            buf.push(b);
                        }
                        i += 1;
                        state = State::Str(sink, next);
                    }
                    Escape::Hex(left) => {
                        if !b.is_ascii_hexdigit() {
                            return Err((i, "invalid \\u escape in a string"));
                        }
                        if let Some(buf) = self.sink(sink) {
                            buf.push(b);
                        }
                        i += 1;
                        let next = if left == 1 {
                            Escape::None
                        } else {
                            Escape::Hex(left - 1)
                        };
                        state = State::Str(sink, next);
                    }
                },
                State::CommaOrClose => {
                    i += 1;
                    let top = self.stack.last().copied();
                    state = match (b, top) {
                        (b',', Some(Container::Data)) => State::Value(Role::Series),
                        (b',', Some(Container::SkippedArray)) => State::Value(Role::Ignored),
                        (b',', _) => State::Key,
                        (b'}', Some(Container::Envelope | Container::Series))
                        | (b'}', Some(Container::SkippedObject))
                        | (b']', Some(Container::Data | Container::SkippedArray)) => self.close(),
                        _ if is_whitespace(b) => state,
                        _ => return Err((i - 1, "expected `,` or the end of an object or array")),
                    };
                }
                State::Key | State::FirstKey => {
                    i += 1;
                    match b {
                        b'"' => {
                            self.escaped = false;
                            state = State::Str(self.key_sink(), Escape::None);
                        }
                        b'}' if state == State::FirstKey => state = self.close(),
                        _ if is_whitespace(b) => {}
                        _ => return Err((i - 1, "expected a key")),
                    }
                }
                State::Colon(role) => {
                    i += 1;
                    match b {
                        b':' => state = State::Value(role),
                        _ if is_whitespace(b) => {}
                        _ => return Err((i - 1, "expected `:`")),
                    }
                }
                State::FirstElement(_) if b == b']' => {
                    i += 1;
                    state = self.close();
                }
                State::Value(role) | State::FirstElement(role) => {
                    let at = i;
                    i += 1;
                    let fail = |what| Err((at, what));
                    state = match b {
                        b'"' => {
                            self.escaped = false;
                            match self.string_value(role) {
                                Ok(sink) => State::Str(sink, Escape::None),
                                Err(e) => return fail(e),
                            }
                        }
                        b'{' if role == Role::Series => {
                            if let Some(end) = self.whole_series(chunk, i) {
                                i = end;
                                state = State::CommaOrClose;
                                continue;
                            }
                            self.name.clear();
                            self.labels.clear();
                            self.named = false;
                            self.push(Container::Series).map_err(|e| (at, e))?;
                            State::FirstKey
                        }
                        b'{' => {
                            let container = match role {
                                Role::Envelope => Container::Envelope,
                                Role::Ignored => Container::SkippedObject,
                                other => return fail(expected(other)),
                            };
                            self.push(container).map_err(|e| (at, e))?;
                            State::FirstKey
                        }
                        b'[' => {
                            let (container, element) = match role {
                                Role::Data => (Container::Data, Role::Series),
                                Role::Ignored => (Container::SkippedArray, Role::Ignored),
                                other => return fail(expected(other)),
                            };
                            self.push(container).map_err(|e| (at, e))?;
                            State::FirstElement(element)
                        }
                        b'-' | b'0'..=b'9' if role == Role::Ignored => State::Number(match b {
                            b'-' => Number::Minus,
                            b'0' => Number::Zero,
                            _ => Number::Integer,
                        }),
                        b't' if role == Role::Ignored => State::Literal(b"rue"),
                        b'f' if role == Role::Ignored => State::Literal(b"alse"),
                        b'n' if role == Role::Ignored || role == Role::Data => {
                            State::Literal(b"ull")
                        }
                        _ if is_whitespace(b) => state,
                        b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => return fail(expected(role)),
                        _ => return fail("expected a value"),
                    };
                }
                State::Number(n) => match n.next(b) {
                    Some(next) => {
                        i += 1;
                        state = State::Number(next);
                    }
                    None if n.complete() => state = self.after_value(),
                    None => return Err((i, "invalid number")),
                },
                State::Literal(rest) => {
                    if rest.first() != Some(&b) {
                        return Err((i, "invalid literal"));
                    }
                    i += 1;
                    state = if rest.len() == 1 {
                        self.after_value()
                    } else {
                        State::Literal(&rest[1..])
                    };
                }
                State::End => {
                    if !is_whitespace(b) {
                        return Err((i, "trailing characters after the body"));
                    }
                    i += 1;
                }
            }
        }
        self.state = state;
        Ok(())
    }
}

/// What a value in `role` must be.
fn expected(role: Role) -> &'static str {
    match role {
        Role::Envelope => "expected an object",
        Role::Field(_) | Role::Name => "expected a string",
        Role::Data => "expected an array of series or null",
        Role::Series => "expected a series object",
        Role::Ignored => "expected a value",
    }
}

/// The text of a raw JSON string (between its quotes, already checked to hold only valid
/// escape sequences and no control characters): escapes resolved, surrogate pairs joined.
fn unescape(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = raw.get(i) else {
            return Err("unterminated escape".to_string());
        };
        i += 1;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = hex4(raw, i)?;
                i += 4;
                let code = match high {
                    0xDC00..=0xDFFF => return Err("lone trailing surrogate".to_string()),
                    0xD800..=0xDBFF => {
                        if raw.get(i..i + 2) != Some(b"\\u") {
                            return Err("lone leading surrogate".to_string());
                        }
                        let low = hex4(raw, i + 2)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err("lone leading surrogate".to_string());
                        }
                        i += 6;
                        0x1_0000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    }
                    other => other,
                };
                char::from_u32(code).ok_or_else(|| "invalid \\u escape".to_string())?
            }
            _ => return Err("invalid escape".to_string()),
        };
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8".to_string())
}

/// The four hex digits at `at` in `raw`.
fn hex4(raw: &[u8], at: usize) -> Result<u32, String> {
    let digits = raw
        .get(at..at + 4)
        .ok_or_else(|| "short \\u escape".to_string())?;
    let mut n = 0;
    for &d in digits {
        let v = (d as char)
            .to_digit(16)
            .ok_or_else(|| "invalid \\u escape".to_string())?;
        n = n * 16 + v;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The serde-based decoder the scanner replaced, kept as the reference it must agree with.
    mod reference {
        use std::collections::{BTreeSet, HashSet};
        use std::fmt;

        use promhpa_core::backend::SeriesInfo;
        use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
        use serde::Deserialize;

        #[derive(Deserialize)]
        struct Envelope {
            status: String,
            data: Option<SeriesSet>,
            #[serde(rename = "errorType", default)]
            error_type: String,
            #[serde(default)]
            error: String,
        }

        struct SeriesSet(HashSet<SeriesInfo>);

        impl<'de> Deserialize<'de> for SeriesSet {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct SeqV;
                impl<'de> Visitor<'de> for SeqV {
                    type Value = SeriesSet;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a list of label sets")
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<SeriesSet, A::Error> {
                        let mut set = HashSet::new();
                        while let Some(info) = seq.next_element::<OneSeries>()? {
                            set.insert(info.0);
                        }
                        Ok(SeriesSet(set))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<SeriesSet, E> {
                        Ok(SeriesSet(HashSet::new()))
                    }
                }
                d.deserialize_any(SeqV)
            }
        }

        struct OneSeries(SeriesInfo);

        impl<'de> Deserialize<'de> for OneSeries {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct MapV;
                impl<'de> Visitor<'de> for MapV {
                    type Value = OneSeries;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a label set")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<OneSeries, A::Error> {
                        let mut name = String::new();
                        let mut label_names = BTreeSet::new();
                        while let Some(key) = map.next_key::<String>()? {
                            if key == "__name__" {
                                name = map.next_value::<String>()?;
                            } else {
                                map.next_value::<IgnoredAny>()?;
                                label_names.insert(key);
                            }
                        }
                        Ok(OneSeries(SeriesInfo { name, label_names }))
                    }
                }
                d.deserialize_map(MapV)
            }
        }

        pub fn decode(body: &[u8]) -> Result<Vec<SeriesInfo>, String> {
            let env: Envelope = serde_json::from_slice(body)
                .map_err(|e| format!("decoding series response: {e}"))?;
            if env.status != "success" {
                return Err(format!(
                    "series request failed: {}: {}",
                    env.error_type, env.error
                ));
            }
            let mut out: Vec<SeriesInfo> = env
                .data
                .map(|s| s.0.into_iter().collect())
                .unwrap_or_default();
            out.sort();
            Ok(out)
        }
    }

    /// The scanner's answer for `body` fed in the given pieces.
    fn scan(pieces: &[&[u8]]) -> Result<Vec<SeriesInfo>, String> {
        let mut scanner = SeriesScanner::new();
        for piece in pieces {
            scanner.feed(piece)?;
        }
        scanner.finish()
    }

    /// The scanner agrees with the reference on `body`, whole, cut once at every position and
    /// fed byte by byte.
    fn agrees(body: &[u8]) -> Result<(), TestCaseError> {
        let want = reference::decode(body);
        let check = |got: Result<Vec<SeriesInfo>, String>, how: &str| {
            match (&want, &got) {
                (Ok(w), Ok(g)) => prop_assert_eq!(w, g, "{}", how),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(
                    false,
                    "{how}: reference {want:?}, scanner {got:?} for {}",
                    String::from_utf8_lossy(body)
                ),
            }
            Ok(())
        };
        check(scan(&[body]), "whole")?;
        for cut in 0..=body.len() {
            check(
                scan(&[&body[..cut], &body[cut..]]),
                &format!("cut at {cut}"),
            )?;
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        check(scan(&bytes), "byte by byte")
    }

    fn names(infos: &[SeriesInfo]) -> Vec<(String, Vec<String>)> {
        infos
            .iter()
            .map(|i| (i.name.clone(), i.label_names.iter().cloned().collect()))
            .collect()
    }

    fn owned(name: &str, labels: &[&str]) -> (String, Vec<String>) {
        (
            name.to_string(),
            labels.iter().map(|l| l.to_string()).collect(),
        )
    }

    #[test]
    fn escapes_in_names_keys_and_values() {
        let body = r#"{"status":"success","data":[
            {"\u005f_name__":"caf\u00e9","a\"b":"x\"y","c\\d":"\\","e":"\\\"","\ud83d\ude00":"\u0022"},
            {"__name__":"caf\u00e9","\u0061\"b":"\/\b\f\n\r\t","c\\d":"","e":"\u00e9\ud83d\ude00","😀":""},
            {"__name__":"x\/y","":"empty name"}]}"#
            .as_bytes();
        let got = scan(&[body]).unwrap();
        assert_eq!(
            names(&got),
            vec![
                owned("café", &["a\"b", "c\\d", "e", "😀"]),
                owned("x/y", &[""]),
            ]
        );
        agrees(body).unwrap();
    }

    #[test]
    fn empty_null_and_missing_data() {
        for body in [
            &br#"{"status":"success","data":[]}"#[..],
            br#" {"status" : "success" , "data" : null } "#,
            br#"{"status":"success"}"#,
            br#"{"data":[],"status":"success","warnings":["w"]}"#,
        ] {
            assert_eq!(scan(&[body]).unwrap(), Vec::new());
            agrees(body).unwrap();
        }
    }

    #[test]
    fn error_status_is_reported() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"invalid \"match[]\""}"#;
        let err = scan(&[body]).unwrap_err();
        assert_eq!(err, "series request failed: bad_data: invalid \"match[]\"");
        agrees(body).unwrap();
        let err = scan(&[br#"{"data":[]}"#]).unwrap_err();
        assert!(err.contains("missing field `status`"), "{err}");
    }

    #[test]
    fn truncated_bodies_fail() {
        let body =
            br#"{"status":"success","data":[{"__name__":"up","job":"a\"b","x":[1,{"y":-2e3}]}]}"#;
        for cut in 0..body.len() {
            let err = scan(&[&body[..cut]]).unwrap_err();
            assert!(err.contains("ended early"), "{cut}: {err}");
        }
        assert!(scan(&[body]).is_ok());
    }

    #[test]
    fn a_replaced_name_must_still_be_a_string() {
        // serde's decoder reads every `__name__` value as a string, also one that a later
        // `__name__` replaces; a label value it skips unchecked.
        let bad_replaced: &[u8] =
            b"{\"status\":\"success\",\"data\":[{\"__name__\":\"u\xe0up\",\"__name__\":\"up\"}]}";
        let surrogate_replaced: &[u8] =
            br#"{"status":"success","data":[{"__name__":"\ud800","__name__":"up"}]}"#;
        let bad_value: &[u8] =
            b"{\"status\":\"success\",\"data\":[{\"__name__\":\"up\",\"pod\":\"a\xff\"}]}";
        let good_replaced: &[u8] =
            br#"{"status":"success","data":[{"__name__":"down","pod":"a","__name__":"up"}]}"#;
        for body in [bad_replaced, surrogate_replaced, bad_value, good_replaced] {
            agrees(body).unwrap();
        }
        assert!(scan(&[bad_replaced]).is_err());
        assert!(scan(&[surrogate_replaced]).is_err());
        assert_eq!(
            names(&scan(&[bad_value]).unwrap()),
            vec![owned("up", &["pod"])]
        );
        assert_eq!(
            names(&scan(&[good_replaced]).unwrap()),
            vec![owned("up", &["pod"])]
        );
    }

    #[test]
    fn garbage_and_wrong_shapes_fail_as_before() {
        let nested = |depth: usize| {
            format!(
                r#"{{"status":"success","x":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        let bad: Vec<&[u8]> = vec![
            b"",
            b"<html>",
            b"null",
            br#"{"status":"success","data":[1]}"#,
            br#"{"status":"success","data":{}}"#,
            br#"{"status":"success","data":"x"}"#,
            br#"{"status":5,"data":[]}"#,
            br#"{"status":null,"data":[]}"#,
            br#"{"status":"success","data":[{"__name__":1}]}"#,
            br#"{"status":"success","data":[{"__name__":null}]}"#,
            br#"{"status":"success","data":[]}x"#,
            br#"{"status":"success","data":[],}"#,
            br#"{"status":"success","data":[{},]}"#,
            br#"{"status":"success","data":[{"a":"b",}]}"#,
            br#"{"status":"success","data":[{"a""b"}]}"#,
            br#"{"status":"success","data":[{"a":"\x"}]}"#,
            br#"{"status":"success","data":[{"a":"\u12g4"}]}"#,
            b"{\"status\":\"success\",\"data\":[{\"a\":\"\x01\"}]}",
            b"{\"status\":\"success\",\"data\":[{\"a\xff\":\"b\"}]}",
            br#"{"status":"success","data":[{"\ud800":"b"}]}"#,
            br#"{"status":"success","data":[{"\udc00":"b"}]}"#,
            br#"{"status":"success","data":[{"\ud800\u0041":"b"}]}"#,
            br#"{"status":"success","status":"success"}"#,
            br#"{"status":"success","data":[],"data":[]}"#,
            br#"{"status":"success","data":[{"a":01}]}"#,
            br#"{"status":"success","data":[{"a":1.}]}"#,
            br#"{"status":"success","data":[{"a":-}]}"#,
            br#"{"status":"success","data":[{"a":1e}]}"#,
            br#"{"status":"success","data":[{"a":tru}]}"#,
            br#"{"status":"success","data":[{"a":nul}]}"#,
            br#"{"status":"success","data":[{"a":[1,]}]}"#,
            br#"{"status":"success","data":[{"a":{"b"}}]}"#,
            br#"{"status":"success","data":[{"a":"b"]}"#,
            br#"{"status":"success","data":[{"a":"b"}}"#,
            br#"{"status":"succ"#,
        ];
        for body in bad {
            let err = scan(&[body]).unwrap_err();
            assert!(err.starts_with("decoding series response: "), "{err}");
            agrees(body).unwrap();
        }
        // Label values of any JSON type are skipped, as are unknown envelope members and
        // invalid UTF-8 inside skipped strings.
        let good: Vec<&[u8]> = vec![
            br#"{"status":"success","data":[{"__name__":"up","a":1,"b":[true,null,{"c":-1.5e+3}],"d":{},"e":false,"f":0,"g":-0.0E-1}]}"#,
            b"{\"status\":\"success\",\"data\":[{\"__name__\":\"up\",\"a\":\"\xff\"}],\"w\":[\"\xfe\"]}",
            br#"{"status":"success","data":[{"__name__":"a","__name__":"b"},{}]}"#,
        ];
        for body in good {
            scan(&[body]).unwrap();
            agrees(body).unwrap();
        }
        // Nesting is limited to serde_json's depth of 128 everywhere, where the reference
        // skipped unknown values of any depth.
        assert!(scan(&[nested(100).as_bytes()]).is_ok());
        let err = scan(&[nested(300).as_bytes()]).unwrap_err();
        assert!(err.contains("nested too deeply"), "{err}");
    }

    /// JSON text of a string, sometimes with escapes where none are needed.
    fn json_string(s: &str, escape_all: bool) -> String {
        if !escape_all {
            return serde_json::to_string(s).unwrap();
        }
        let mut out = String::from("\"");
        for unit in s.encode_utf16() {
            out.push_str(&format!("\\u{unit:04x}"));
        }
        out.push('"');
        out
    }

    fn label_name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "namespace", "pod", "container", "job", "instance", "code", "le", "a\"b", "c\\d",
                "é", "😀", "", "__name__",
            ])
            .prop_map(str::to_string),
            1 => "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        ]
    }

    /// JSON text of a label value.
    fn label_value() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => any::<String>().prop_map(|s| json_string(&s, false)),
            1 => any::<String>().prop_map(|s| json_string(&s, true)),
            1 => prop::sample::select(vec![
                r#""x\\""#, r#""\"""#, r#""\/\b\f\n\r\t""#, "12", "-0.5e+3", "null", "true",
                r#"[1,{"a":[false,"]"]}]"#, "{}", "[]", r#""\ud83d\ude00""#,
            ])
            .prop_map(str::to_string),
        ]
    }

    fn metric_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["up", "http_requests_total", "café", "", "a\"b"])
                .prop_map(str::to_string),
            "[a-z_:]{1,10}",
        ]
    }

    /// A series object: an optional name and labels, in any order, spaced with `ws`.
    fn series_object() -> impl Strategy<Value = String> {
        (
            prop::option::weighted(0.9, (metric_name(), any::<bool>())),
            prop::collection::vec((label_name(), any::<bool>(), label_value()), 0..6),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(name, labels, at)| {
                let mut members: Vec<String> = labels
                    .iter()
                    .map(|(k, escape, v)| format!("{}:{v}", json_string(k, *escape)))
                    .collect();
                if let Some((name, escape)) = name {
                    let key = if escape {
                        r#""\u005f_name__""#
                    } else {
                        r#""__name__""#
                    };
                    let at = at.index(members.len() + 1);
                    members.insert(at, format!("{key}:{}", json_string(&name, false)));
                }
                format!("{{{}}}", members.join(","))
            })
    }

    /// A series as Prometheus writes them: compact, `__name__` first, label names from a
    /// short sorted list, so that neighbours often have the same name and label names.
    fn compact_series() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["up", "up", "http_requests_total", r#"a\"b"#]),
            prop::collection::vec(
                prop::option::weighted(
                    0.8,
                    prop_oneof![
                        6 => "[a-z0-9.:#\\]-]{0,12}".prop_map(|v| format!("\"{v}\"")),
                        1 => any::<String>().prop_map(|s| json_string(&s, false)),
                        1 => Just(r#""\u00e9\"\\""#.to_string()),
                    ],
                ),
                4,
            ),
        )
            .prop_map(|(name, values)| {
                let mut series = format!("{{\"__name__\":\"{name}\"");
                for (key, value) in ["code", "instance", "job", r#"p\"od"#].iter().zip(values) {
                    if let Some(value) = value {
                        series.push_str(&format!(",\"{key}\":{value}"));
                    }
                }
                series.push('}');
                series
            })
    }

    /// A `/api/v1/series` body, spaced with whitespace when `spaced`.
    fn body() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop_oneof![series_object(), compact_series()], 0..8),
            prop::sample::select(vec!["success", "success", "success", "error"]),
            0..3usize,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(series, status, data, warnings, spaced)| {
                let sep = if spaced { " \n\t" } else { "" };
                let mut members = vec![format!("\"status\":{sep}\"{status}\"")];
                match data {
                    0 => members.push(format!("\"data\":[{}]", series.join(&format!(",{sep}")))),
                    1 => members.push("\"data\":null".to_string()),
                    _ => {}
                }
                if status == "error" {
                    members.push(r#""errorType":"bad_data","error":"nope""#.to_string());
                }
                if warnings {
                    members.insert(0, r#""warnings":["slow", {"x": [1, 2.5]}]"#.to_string());
                }
                format!("{sep}{{{}}}{sep}", members.join(&format!("{sep},{sep}")))
            })
    }

    #[test]
    fn every_byte_value_is_classified_at_every_position() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                let want = if is_special(b) { at } else { 8 };
                let mut s = word.to_vec();
                s.extend_from_slice(b"aaaa\"");
                assert_eq!(plain_run(&s).min(8), want, "byte {b:#04x} at {at}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn plain_runs_end_at_the_first_special_byte(
            s in prop::collection::vec(prop_oneof![
                4 => 0x20..0x7fu8,
                1 => any::<u8>(),
                1 => prop::sample::select(b"\"\\\x00\x1f\x20\x21\x23\x5b\x5d\x7f\x80\xa2\xdc".to_vec()),
            ], 0..80),
        ) {
            let want = s.iter().position(|&b| is_special(b)).unwrap_or(s.len());
            prop_assert_eq!(plain_run(&s), want);
        }

        #[test]
        fn same_as_the_reference_at_every_chunk_boundary(body in body()) {
            agrees(body.as_bytes())?;
        }

        #[test]
        fn same_as_the_reference_in_three_pieces(
            body in body(),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            let body = body.as_bytes();
            let (mut a, mut b) = (a.index(body.len() + 1), b.index(body.len() + 1));
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            let want = reference::decode(body);
            let got = scan(&[&body[..a], &body[a..b], &body[b..]]);
            prop_assert_eq!(want.is_ok(), got.is_ok());
            if let (Ok(w), Ok(g)) = (want, got) {
                prop_assert_eq!(w, g);
            }
        }

        #[test]
        fn same_as_the_reference_on_damaged_bodies(
            body in body(),
            edits in prop::collection::vec(
                (any::<prop::sample::Index>(), 0..3u8, prop::sample::select(
                    b"{}[],:\"\\u0a-.entf \x01\xff\xc3".to_vec(),
                )),
                1..4,
            ),
        ) {
            let mut body = body.into_bytes();
            for (at, op, byte) in edits {
                let at = at.index(body.len() + 1);
                match op {
                    0 if at < body.len() => body[at] = byte,
                    1 if at < body.len() => {
                        body.remove(at);
                    }
                    _ => body.insert(at, byte),
                }
            }
            agrees(&body)?;
        }
    }
}
