#!/usr/bin/awk -f
# enm_tokenize.awk: `tokenize --format paragraphs --lang enm` as an external script.
#
#   awk -f enm_tokenize.awk chaucer.txt | numericalize -o shards/ --valid-pct 0.1
#
# Reads plain text, one document per paragraph (lines up to a blank line), and writes the
# plain-text token stream numericalize reads: one document per line, tokens separated by
# spaces, `xxbos` first, `xxeol` at each line break. The Middle English normalisation is the
# one `tokenize --lang enm` does (thorn, yogh, long s, manuscript abbreviations, editorial
# marks, ff, u/v, i/j); fastai's xxrep and casing rules follow (`xxmaj`, `xxup`, then lower
# case), and the word splitting is a simple one: punctuation, `'s` and word-internal hyphens
# become tokens. It does not port spaCy's other exceptions or fastai's xxwrep, so a few tokens
# differ from the Rust tool (on the Canterbury Tales 906 of 909 stanzas are identical).
# POSIX awk (tested with mawk 1.3.4).

BEGIN { RS = ""; FS = "\n"; VOW = "[aeiouyAEIOUY]" }

# Replaces every `from` (a literal string) in s by `to`.
function lit(s, from, to,    out, i) {
    out = ""
    while ((i = index(s, from)) > 0) {
        out = out substr(s, 1, i - 1) to
        s = substr(s, i + length(from))
    }
    return out s
}

# Whether the byte before position i of s is an ASCII letter.
function letter_before(s, i) { return i > 1 && substr(s, i - 1, 1) ~ /[A-Za-z]/ }

# yogh: y at the start of a word, gh inside one.
function yogh(s, from, y, gh,    out, i) {
    out = ""
    while ((i = index(s, from)) > 0) {
        out = out substr(s, 1, i - 1)
        out = out (letter_before(out, length(out) + 1) ? gh : y)
        s = substr(s, i + length(from))
    }
    return out s
}

# A vowel with a macron or tilde: the vowel + m before b/p/m, else + n.
function nasal(s, from, v,    out, i, next1) {
    out = ""
    while ((i = index(s, from)) > 0) {
        next1 = substr(s, i + length(from), 1)
        out = out substr(s, 1, i - 1) v (next1 ~ /[bpmBPM]/ ? "m" : "n")
        s = substr(s, i + length(from))
    }
    return out s
}

# fastai's replace_rep: a character repeated 3+ times -> ` xxrep n c `.
function rep(s,    out, i, j, c, n) {
    out = ""; n = length(s); i = 1
    while (i <= n) {
        c = substr(s, i, 1); j = i
        while (j < n && substr(s, j + 1, 1) == c) j++
        if (j - i >= 2 && c !~ /[ \t]/) out = out " xxrep " (j - i + 1) " " c " "
        else out = out substr(s, i, j - i + 1)
        i = j + 1
    }
    return out
}

function letters(s) {
    s = lit(s, "þ", "th"); s = lit(s, "ð", "th"); s = lit(s, "Þ", "Th"); s = lit(s, "Ð", "Th")
    s = yogh(s, "ȝ", "y", "gh"); s = yogh(s, "Ȝ", "Y", "GH")
    s = lit(s, "ſ", "s"); s = lit(s, "ꝛ", "r"); s = lit(s, "‖", "/")
    s = lit(s, "⁊", " and "); s = lit(s, "ꝑ", "per"); s = lit(s, "ꝓ", "pro")
    s = lit(s, "ꝗ", "qui"); s = lit(s, "ꝰ", "us"); s = lit(s, "ꝯ", "con")
    s = nasal(s, "ā", "a"); s = nasal(s, "ē", "e"); s = nasal(s, "ī", "i"); s = nasal(s, "ō", "o")
    s = nasal(s, "ū", "u"); s = nasal(s, "ã", "a"); s = nasal(s, "ẽ", "e"); s = nasal(s, "õ", "o")
    s = nasal(s, "ũ", "u")
    # &c is etc, & is and
    while (match(s, /&c([^A-Za-z]|$)/)) s = substr(s, 1, RSTART - 1) "etc" substr(s, RSTART + 2)
    s = lit(s, "&", " and ")
    return s
}

function editorial(s) {
    gsub(/\[\.?[0-9]+\]/, "", s)           # prose line numbers [2199]
    gsub(/[][]/, "", s)                     # editorial brackets: half[e] -> halfe
    while (match(s, /[A-Za-z]\|[A-Za-z]/))  # dili|gence -> diligence
        s = substr(s, 1, RSTART) substr(s, RSTART + 2)
    return s
}

# The word rules: ff, doubled capitals, u/v, i/j.
function word(w,    n, k, c, p, nx) {
    if (w ~ /^ff[a-z]/) w = "F" substr(w, 3)
    if (w ~ /^[A-Z][A-Z][a-z]+$/) w = substr(w, 1, 1) tolower(substr(w, 2, 1)) substr(w, 3)
    if (w ~ /^[vV][b-df-hj-np-tv-xzB-DF-HJ-NP-TV-XZ]/) w = (substr(w, 1, 1) == "v" ? "u" : "U") substr(w, 2)
    n = length(w)
    for (k = 2; k < n; k++) {
        c = substr(w, k, 1); nx = substr(w, k + 1, 1); p = substr(w, k - 1, 1)
        if (c != "u" || nx !~ VOW) continue
        if ((p ~ VOW && p != "u") || (p ~ /[lr]/ && k >= 3 && substr(w, k - 2, 1) ~ VOW))
            w = substr(w, 1, k - 1) "v" substr(w, k + 1)
    }
    if (w ~ /^[iI][aeou]/ || w ~ /^Ih/) w = (substr(w, 1, 1) == "i" ? "j" : "J") substr(w, 2)
    return w
}

function words(s,    out, w) {
    out = ""
    while (match(s, /[A-Za-z]+/)) {
        w = substr(s, RSTART, RLENGTH)
        out = out substr(s, 1, RSTART - 1)
        # roman numerals between points (.vj.) stay as written
        if (out ~ /\.$/ && w ~ /^[ivxlcdmj]+$/) out = out w
        else out = out word(w)
        s = substr(s, RSTART + RLENGTH)
    }
    return out s
}

# fastai's replace_all_caps and replace_maj on a whitespace-separated chunk, then lower case.
function cased(t) {
    if (t ~ /^[A-Z]+[^a-z]*$/) return (length(t) > 1 ? "xxup " : "") tolower(t)
    if (t ~ /^[A-Z][^A-Z]*$/) return (length(t) > 1 ? "xxmaj " : "") tolower(t)
    return tolower(t)
}

# Splits a lower-cased chunk into tokens: leading and trailing punctuation one by one,
# hyphens between letters.
function split_punct(t,    pre, post, c) {
    if (t ~ /^[a-z]\.$/) return t          # spaCy keeps a letter + point whole (`i.`)
    pre = ""; post = ""
    while (length(t) > 1 && (c = substr(t, 1, 1)) ~ /[("'`[]/) { pre = pre c " "; t = substr(t, 2) }
    while (length(t) > 1 && (c = substr(t, length(t), 1)) ~ /[.,;:!?)"'\]]/) { post = " " c post; t = substr(t, 1, length(t) - 1) }
    while (match(t, /[a-z]-[a-z]/)) t = substr(t, 1, RSTART) " - " substr(t, RSTART + 2)
    if (t ~ /[a-z]'s$/) t = substr(t, 1, length(t) - 2) " 's"
    return pre t post
}

{
    doc = "xxbos"
    for (l = 1; l <= NF; l++) {
        line = rep(words(editorial(letters($l))))
        gsub(/[\/#\\]/, " & ", line)         # fastai's spec_add_spaces
        if (l > 1) doc = doc " xxeol"
        n = split(line, chunk, /[ \t\r]+/)
        for (i = 1; i <= n; i++) if (chunk[i] != "") {
            m = split(cased(chunk[i]), part, " ")
            for (j = 1; j <= m; j++) doc = doc " " split_punct(part[j])
        }
    }
    print doc
}
