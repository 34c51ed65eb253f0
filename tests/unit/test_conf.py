"""Behaviour of the Asterisk-style .conf reader every add-on relies on."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from pbx.asterisk.conf import (
    Config,
    ConfigError,
    Entry,
    Section,
    as_bool,
    as_int,
    parse_config,
    read_config,
)


def lines(*text: str) -> str:
    """One argument per line, so line N of the file is argument N of the call."""
    return "\n".join(text) + "\n"


def parse(*text: str) -> Config:
    return parse_config(lines(*text), "t.conf")


def parse_error(*text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(*text)
    return info.value


def write(folder: Path, name: str, *text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lines(*text), encoding="utf-8")
    return path


def read_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        read_config(path)
    return info.value


def section(config: Config, name: str) -> Section:
    found = config.get(name)
    assert found is not None, f"no section [{name}]"
    return found


# --- sections and options ------------------------------------------------------------------------------


def test_sections_and_both_operators() -> None:
    config = parse("[general]", "a = 1", "b => 2", "[other]", "c=3", "d=>4")
    assert config.names() == ["general", "other"]
    assert section(config, "general").getall("a") == ["1"]
    assert section(config, "general").get("b") == "2"
    assert section(config, "other").get("c") == "3"
    assert section(config, "other").get("d") == "4"


def test_whitespace_around_key_and_value_is_stripped() -> None:
    general = section(parse("  [ general ]  ", "\t key \t =   some value \t"), "general")
    assert general.name == "general"
    assert general.entries[0].key == "key"
    assert general.get("key") == "some value"


def test_value_keeps_everything_after_the_first_operator() -> None:
    ext = section(parse("[ctx]", "exten => 100,1,Set(A=b=>c)"), "ctx")
    assert ext.get("exten") == "100,1,Set(A=b=>c)"


@pytest.mark.parametrize("line", ["key =", "key=", "key =>", "key =   ", 'key = ""'])
def test_empty_values_are_allowed(line: str) -> None:
    sec = section(parse("[s]", line), "s")
    assert sec.get("key") == ""
    assert "key" in sec


def test_blank_and_whitespace_only_lines_are_ignored() -> None:
    config = parse("", "   ", "\t", "[s]", "", " \t ", "a = 1", "")
    assert [e.key for e in section(config, "s").entries] == ["a"]


def test_crlf_line_endings() -> None:
    config = parse_config("[s]\r\na = 1\r\nb = 2 ; note\r\n", "t.conf")
    assert section(config, "s").getall("a") == ["1"]
    assert section(config, "s").get("b") == "2"


def test_entries_and_sections_record_file_and_line() -> None:
    config = parse("; header", "[s]", "", "a = 1")
    sec = section(config, "s")
    assert (sec.file, sec.line) == (Path("t.conf"), 2)
    assert sec.entries == [Entry(key="a", value="1", index=None, file=Path("t.conf"), line=4)]
    assert config.path == Path("t.conf")


def test_section_without_entries() -> None:
    config = parse("[empty]", "[full]", "a = 1")
    assert section(config, "empty").entries == []
    assert config.names() == ["empty", "full"]


def test_config_lookups_for_missing_section() -> None:
    config = parse("[a]")
    assert config.get("nope") is None
    assert config.all("nope") == []


def test_keys_and_sections_match_case_insensitively_but_keep_spelling() -> None:
    config = parse("[General]", "Enabled = yes", "enabled = no")
    sec = section(config, "general")
    assert sec.name == "General"
    assert sec.get("ENABLED") == "no"
    assert sec.keys() == ["Enabled"]
    assert config.names() == ["General"]


# --- comments ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("a = 1 ; comment", "1"),
        ("a = 1;comment", "1"),
        ("a = 1 ;-- block --; ", "1"),
        ("a = 1 ;-- block --; 2", "1  2"),
        ("a = ;-- x --;1;-- y --;", "1"),
        ("a = 1 \\; 2", "1 ; 2"),
        ("a = x\\;y\\;z ; real comment", "x;y;z"),
        ('a = "x \\; y"', "x ; y"),
        ("a = \\;-- not a block", ";-- not a block"),
        ("a = C:\\path\\x", "C:\\path\\x"),
        ("a = 1 --; 2", "1 --"),
        ("a = 1 ;-- nested ;-- inner --; still --; 2", "1  2"),
    ],
)
def test_comments_and_escapes_in_a_line(line: str, value: str) -> None:
    assert section(parse("[s]", line), "s").get("a") == value


def test_semicolon_inside_quotes_still_starts_a_comment() -> None:
    # As in Asterisk: quotes do not protect ";", which must always be written "\;".
    assert section(parse("[s]", 'a = "x ; y"'), "s").get("a") == '"x'


def test_whole_line_comments_are_ignored() -> None:
    config = parse("; [hidden]", "[s]", "  ; a = 1", ";a=2", "b = 3")
    assert config.names() == ["s"]
    assert section(config, "s").keys() == ["b"]


def test_multi_line_block_comment_hides_everything_inside() -> None:
    config = parse(
        "[s]",
        "a = 1 ;-- start",
        "[hidden]",
        "#include nowhere.conf",
        "b = 2",
        "end --; c = 3",
        "d = 4",
    )
    sec = section(config, "s")
    assert config.names() == ["s"]
    assert [(e.key, e.value, e.line) for e in sec.entries] == [("a", "1", 2), ("c", "3", 6), ("d", "4", 7)]


def test_nested_multi_line_block_comments() -> None:
    config = parse("[s]", ";-- outer", ";-- inner", "inner end --;", "x = hidden", "outer end --;", "y = 1")
    assert section(config, "s").keys() == ["y"]


def test_unterminated_block_comment_names_where_it_opened() -> None:
    err = parse_error("[s]", "a = 1", "b = 2 ;-- never closed", "c = 3")
    assert str(err) == "t.conf:3: unterminated block comment (opened at line 3)"
    assert (err.file, err.line) == (Path("t.conf"), 3)


def test_unterminated_nested_block_comment() -> None:
    err = parse_error("[s]", ";-- a", ";-- b", "--;")
    assert str(err) == "t.conf:2: unterminated block comment (opened at line 2)"


# --- templates and inheritance -------------------------------------------------------------------------


def test_template_is_kept_apart_from_real_sections() -> None:
    config = parse("[tpl](!)", "a = 1", "[s](tpl)")
    assert [s.name for s in config] == ["s"]
    assert [s.name for s in config.templates()] == ["tpl"]
    assert [s.name for s in config.sections] == ["tpl", "s"]
    assert config.get("tpl") is None
    assert section(config, "s").bases == ("tpl",)
    assert config.templates()[0].is_template


def test_multi_inheritance_order_is_templates_then_own() -> None:
    config = parse(
        "[t1](!)",
        "a = t1",
        "b = t1",
        "[t2](!)",
        "a = t2",
        "c = t2",
        "[s](t1, t2)",
        "a = own",
    )
    sec = section(config, "s")
    assert [(e.key, e.value) for e in sec.entries] == [
        ("a", "t1"),
        ("b", "t1"),
        ("a", "t2"),
        ("c", "t2"),
        ("a", "own"),
    ]
    assert sec.get("a") == "own"
    assert sec.getall("a") == ["t1", "t2", "own"]
    assert sec.bases == ("t1", "t2")


def test_template_of_template() -> None:
    config = parse("[base](!)", "a = 1", "[mid](!,base)", "b = 2", "[s](mid)", "c = 3")
    mid = config.templates()[1]
    assert (mid.is_template, mid.bases) == (True, ("base",))
    assert [(e.key, e.value) for e in section(config, "s").entries] == [("a", "1"), ("b", "2"), ("c", "3")]


def test_inherit_from_a_plain_section() -> None:
    config = parse("[a]", "x = 1", "[b](a)", "y = 2")
    assert section(config, "b").keys() == ["x", "y"]
    assert config.names() == ["a", "b"]


def test_inherited_entries_keep_their_own_file_and_line() -> None:
    config = parse("[tpl](!)", "port = 5060", "[s](tpl)")
    sec = section(config, "s")
    assert sec.where("port") == "t.conf:2"
    assert sec.line == 3


def test_plus_appends_to_the_earlier_section() -> None:
    config = parse("[s]", "a = 1", "[other]", "x = 0", "[s](+)", "a = 2", "b = 3")
    assert config.names() == ["s", "other"]
    assert len(config.sections) == 2
    sec = section(config, "s")
    assert sec.getall("a") == ["1", "2"]
    assert sec.get("a") == "2"
    assert sec.get("b") == "3"
    assert section(config, "other").keys() == ["x"]


def test_plus_on_a_duplicated_name_targets_the_first() -> None:
    config = parse("[6001]", "type = endpoint", "[6001]", "type = aor", "[6001](+)", "x = 1")
    first, second = config.all("6001")
    assert first.getall("x") == ["1"]
    assert "x" not in second


def test_plus_on_a_template_reaches_only_later_inheritors() -> None:
    config = parse("[tpl](!)", "a = 1", "[early](tpl)", "[tpl](+)", "b = 2", "[late](tpl)")
    assert section(config, "early").keys() == ["a"]
    assert section(config, "late").keys() == ["a", "b"]


def test_plus_after_inheritance_comes_last() -> None:
    config = parse("[tpl](!)", "a = t", "[s](tpl)", "a = own", "[s](+)", "a = added")
    assert section(config, "s").getall("a") == ["t", "own", "added"]


def test_unknown_template_names_file_and_line() -> None:
    err = parse_error("[ok]", "a = 1", "[a](tpl)")
    assert str(err) == "t.conf:3: section [a] inherits from unknown template 'tpl'"
    assert (err.file, err.line) == (Path("t.conf"), 3)


def test_template_must_be_defined_before_use() -> None:
    err = parse_error("[s](later)", "[later](!)")
    assert str(err) == "t.conf:1: section [s] inherits from unknown template 'later'"


def test_plus_without_earlier_section() -> None:
    err = parse_error("[x]", "[a](+)")
    assert str(err) == "t.conf:2: [a](+) adds to a section that does not exist"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("[abc", "unterminated section header: expected \"]\", got '[abc'"),
        ("[]", 'expected a section name between "[" and "]", got \'[]\''),
        ("[  ]", 'expected a section name between "[" and "]", got \'[  ]\''),
        ("[a] junk", "expected \"(options)\" or end of line after [a], got 'junk'"),
        ("[a](!", "expected \"(options)\" or end of line after [a], got '(!'"),
        ("[a](!,)", 'expected "!", "+" or a template name in every item of \'(!,)\''),
        ("[a]()", 'expected "!", "+" or a template name in every item of \'()\''),
        ("[a](+,!)", "expected \"(+)\" alone after [a], got '[a](+,!)'"),
    ],
)
def test_malformed_section_headers(header: str, message: str) -> None:
    err = parse_error("[a]", "x = 1", header)
    assert str(err) == f"t.conf:3: {message}"


# --- duplicate sections and repeated keys --------------------------------------------------------------


def test_duplicate_section_names_stay_separate_and_in_order() -> None:
    config = parse("[6001]", "type = endpoint", "[6001]", "type = aor", "[other]", "[6001]", "type = auth")
    assert [s.get("type") for s in config.all("6001")] == ["endpoint", "aor", "auth"]
    assert section(config, "6001").get("type") == "endpoint"
    assert config.names() == ["6001", "other"]
    assert [s.name for s in config] == ["6001", "6001", "other", "6001"]


def test_repeated_keys_keep_order_and_last_wins() -> None:
    sec = section(parse("[s]", "contact = a", "other = x", "contact => b", "contact = c"), "s")
    assert sec.getall("contact") == ["a", "b", "c"]
    assert sec.get("contact") == "c"
    assert sec.keys() == ["contact", "other"]
    assert sec.where("contact") == "t.conf:5"


def test_missing_key_lookups() -> None:
    sec = section(parse("[s]", "a = 1"), "s")
    assert sec.get("b") is None
    assert sec.get("b", "dflt") == "dflt"
    assert sec.getall("b") == []
    assert sec.indexed("b") == {}
    assert "b" not in sec
    assert 1 not in sec
    assert sec.where("b") == "t.conf:1"


# --- quoted values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('" a b "', " a b "),
        ('""', ""),
        ('"a"b"', 'a"b'),
        ('"open', '"open'),
        ('close"', 'close"'),
        ('"', '"'),
        ("'single'", "'single'"),
        ('x "in" y', 'x "in" y'),
        ('  "padded"  ', "padded"),
    ],
)
def test_quoted_values(raw: str, value: str) -> None:
    assert section(parse("[s]", f"key = {raw}"), "s").get("key") == value


# --- indexed keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["num[x] = v", "num [x] = v", "num [ x ] => v", "num\t[x]=v"])
def test_explicit_index_forms(line: str) -> None:
    sec = section(parse("[s]", line), "s")
    assert sec.entries[0].key == "num"
    assert sec.entries[0].index == "x"
    assert sec.indexed("num") == {"x": "v"}


@pytest.mark.parametrize("form", ["k[]", "k []", "k[ ]", "k  []"])
def test_append_index_forms_count_from_zero(form: str) -> None:
    sec = section(parse("[s]", f"{form} = a", f"{form} = b"), "s")
    assert sec.indexed("k") == {"0": "a", "1": "b"}
    assert [e.index for e in sec.entries] == ["0", "1"]


def test_append_after_explicit_numeric_index_continues_like_php() -> None:
    sec = section(parse("[s]", "k[] = a", "k[3] = b", "k[] = c", "k[1] = d", "k[] = e"), "s")
    assert sec.indexed("k") == {"0": "a", "3": "b", "4": "c", "1": "d", "5": "e"}


def test_non_numeric_indexes_do_not_move_the_counter() -> None:
    sec = section(parse("[s]", "k[x] = a", "k[03] = b", "k[-2] = c", "k[] = d"), "s")
    assert sec.indexed("k") == {"x": "a", "03": "b", "-2": "c", "0": "d"}


def test_counters_are_per_key_and_per_section() -> None:
    config = parse("[a]", "k[] = 1", "j[] = 2", "k[] = 3", "[b]", "k[] = 4")
    assert section(config, "a").indexed("k") == {"0": "1", "1": "3"}
    assert section(config, "a").indexed("j") == {"0": "2"}
    assert section(config, "b").indexed("k") == {"0": "4"}


def test_counter_continues_over_inherited_and_added_entries() -> None:
    config = parse("[tpl](!)", "k[] = t", "[s](tpl)", "k[] = own", "[s](+)", "k[] = more")
    assert section(config, "s").indexed("k") == {"0": "t", "1": "own", "2": "more"}
    assert config.templates()[0].indexed("k") == {"0": "t"}


def test_repeated_index_keeps_last_value() -> None:
    sec = section(parse("[s]", "k[x] = 1", "k[y] = 2", "k[x] = 3"), "s")
    assert sec.indexed("k") == {"x": "3", "y": "2"}
    assert sec.getall("k") == ["1", "2", "3"]


def test_mixed_plain_and_indexed_entries_of_one_key() -> None:
    sec = section(parse("[s]", "k = plain", "k[] = first", "k[name] = named"), "s")
    assert sec.indexed("k") == {"0": "first", "name": "named"}
    assert sec.getall("k") == ["plain", "first", "named"]
    assert sec.get("k") == "named"
    assert sec.entries[0].index is None
    assert sec.keys() == ["k"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("k[x = 1", 'expected "key", "key[index]" or "key[]" before "=", got \'k[x\''),
        ("k] = 1", 'expected "key", "key[index]" or "key[]" before "=", got \'k]\''),
        ("k[a][b] = 1", 'expected "key", "key[index]" or "key[]" before "=", got \'k[a][b]\''),
        ("k[a] x = 1", 'expected "key", "key[index]" or "key[]" before "=", got \'k[a] x\''),
        ("= 1", "expected an option name before \"=\", got ''"),
        ("  => 1", "expected an option name before \"=\", got ''"),
        ("[x] = 1", "expected \"(options)\" or end of line after [x], got '= 1'"),
    ],
)
def test_malformed_keys(line: str, message: str) -> None:
    err = parse_error("[s]", line)
    assert str(err) == f"t.conf:2: {message}"


# --- other malformed input -----------------------------------------------------------------------------


def test_line_without_operator() -> None:
    err = parse_error("[s]", "a = 1", "foo bar ; comment")
    assert str(err) == 't.conf:3: expected "key = value", "[section]" or "#include", got \'foo bar\''


def test_long_bad_line_is_shortened_in_the_message() -> None:
    err = parse_error("[s]", "x" * 500)
    assert len(str(err)) < 150
    assert str(err).endswith("...'")


def test_option_before_any_section() -> None:
    err = parse_error("; top", "x = 1", "[s]")
    assert str(err) == "t.conf:2: option 'x' appears before any [section]"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("#exec /bin/true", "#exec is not supported (it would run a program): expected #include"),
        ("#tryexec x", "#tryexec is not supported (it would run a program): expected #include"),
        ("#EXEC x", "#exec is not supported (it would run a program): expected #include"),
        ("#define x", 'expected "#include" or "#tryinclude", got \'#define x\''),
        ("#", 'expected "#include" or "#tryinclude", got \'#\''),
        ("#includex a.conf", 'expected "#include" or "#tryinclude", got \'#includex a.conf\''),
        ("#include", "expected a file name after #include"),
        ('#include ""', "expected a file name after #include"),
        ("#tryinclude <>", "expected a file name after #tryinclude"),
        ('#include "a.conf', 'expected #include "file", got #include \'"a.conf\''),
        ("#include <a.conf", "expected #include <file>, got #include '<a.conf'"),
    ],
)
def test_bad_directives(line: str, message: str) -> None:
    err = parse_error("[s]", line)
    assert str(err) == f"t.conf:2: {message}"


# --- errors themselves ---------------------------------------------------------------------------------


def test_config_error_format_and_attributes() -> None:
    with_line = ConfigError("a.conf", 7, "bad")
    without_line = ConfigError(Path("/x/b.conf"), None, "worse")
    assert str(with_line) == "a.conf:7: bad"
    assert str(without_line) == "/x/b.conf: worse"
    assert (with_line.file, with_line.line, with_line.message) == ("a.conf", 7, "bad")
    assert isinstance(with_line, ValueError)


def test_config_error_survives_pickling() -> None:
    copy = pickle.loads(pickle.dumps(ConfigError("a.conf", 3, "bad")))  # noqa: S301 - our own data
    assert (copy.file, copy.line, copy.message, str(copy)) == ("a.conf", 3, "bad", "a.conf:3: bad")


# --- files, encodings ----------------------------------------------------------------------------------


def test_read_config_from_file(tmp_path: Path) -> None:
    path = write(tmp_path, "main.conf", "[s]", "a = 1")
    config = read_config(str(path))
    assert config.path == path
    assert section(config, "s").where("a") == f"{path}:2"


def test_read_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.conf"
    err = read_error(path)
    assert str(err) == f"{path}: cannot read file: No such file or directory"
    assert (err.file, err.line) == (path, None)


def test_read_config_on_a_directory(tmp_path: Path) -> None:
    err = read_error(tmp_path)
    assert str(err).startswith(f"{tmp_path}: cannot read file: ")


def test_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.conf"
    path.write_bytes(b"\xef\xbb\xbf[s]\na = 1\n")
    config = read_config(path)
    assert config.names() == ["s"]
    assert section(config, "s").where("a") == f"{path}:2"


def test_bom_in_a_string_is_ignored() -> None:
    assert parse_config("\ufeff[s]\n").names() == ["s"]


def test_invalid_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_bytes(b"[s]\na = 1\nname = caf\xe9\n")
    err = read_error(path)
    assert str(err) == f"{path}:3: expected UTF-8 text, got byte 0xe9 at column 11"


def test_utf8_values_are_decoded(tmp_path: Path) -> None:
    path = write(tmp_path, "u.conf", "[s]", "name = Café ☎")
    assert section(read_config(path), "s").get("name") == "Café ☎"


def test_parse_config_default_name_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("oops\n")
    assert str(info.value).startswith("<string>:1: ")


# --- includes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ['"extra.conf"', "extra.conf", "<extra.conf>", '  "extra.conf"  '])
def test_include_relative_to_including_file(tmp_path: Path, spelling: str) -> None:
    write(tmp_path, "extra.conf", "[extra]", "b = 2")
    main = write(tmp_path, "main.conf", "[main]", "a = 1", f"#include {spelling}", "[last]")
    config = read_config(main)
    assert config.names() == ["main", "extra", "last"]
    extra = section(config, "extra")
    assert extra.file == tmp_path / "extra.conf"
    assert extra.where("b") == f"{tmp_path / 'extra.conf'}:2"


def test_nested_include_is_relative_to_its_own_folder(tmp_path: Path) -> None:
    write(tmp_path, "sub/inner.conf", "[inner]")
    write(tmp_path, "sub/outer.conf", "[outer]", "#include inner.conf")
    write(tmp_path, "inner.conf", "[wrong]")
    main = write(tmp_path, "main.conf", "#include sub/outer.conf")
    assert read_config(main).names() == ["outer", "inner"]


def test_include_absolute_path(tmp_path: Path) -> None:
    other = write(tmp_path, "elsewhere/abs.conf", "[abs]")
    main = write(tmp_path, "conf/main.conf", f'#include "{other}"')
    assert read_config(main).names() == ["abs"]


def test_parse_config_resolves_includes_next_to_path(tmp_path: Path) -> None:
    write(tmp_path, "extra.conf", "[extra]")
    config = parse_config("[main]\n#include extra.conf\n", tmp_path / "virtual.conf")
    assert config.names() == ["main", "extra"]


def test_include_glob_expands_in_sorted_order(tmp_path: Path) -> None:
    for name in ("pjsip_c.conf", "pjsip_a.conf", "pjsip_b.conf", "other.conf"):
        write(tmp_path, name, f"[{name.removesuffix('.conf')}]")
    (tmp_path / "pjsip_dir.conf").mkdir()
    main = write(tmp_path, "main.conf", '#include "pjsip_*.conf"')
    assert read_config(main).names() == ["pjsip_a", "pjsip_b", "pjsip_c"]


def test_glob_does_not_treat_brackets_in_the_folder_as_wildcards(tmp_path: Path) -> None:
    folder = tmp_path / "odd[1]"
    write(folder, "x_1.conf", "[one]")
    main = write(folder, "main.conf", "#include x_*.conf")
    assert read_config(main).names() == ["one"]


def test_include_glob_without_match_is_an_error(tmp_path: Path) -> None:
    main = write(tmp_path, "main.conf", "[s]", '#include "pjsip_*.conf"')
    err = read_error(main)
    assert str(err) == f"{main}:2: #include 'pjsip_*.conf': expected at least one file, none matches"


def test_tryinclude_glob_without_match_is_skipped(tmp_path: Path) -> None:
    main = write(tmp_path, "main.conf", "[s]", '#tryinclude "pjsip_*.conf"', "a = 1")
    assert section(read_config(main), "s").get("a") == "1"


def test_include_missing_file_names_the_including_line(tmp_path: Path) -> None:
    main = write(tmp_path, "main.conf", "[s]", "a = 1", "#include missing.conf")
    err = read_error(main)
    assert str(err) == f"{main}:3: cannot include 'missing.conf': No such file or directory"
    assert (err.file, err.line) == (main, 3)


def test_tryinclude_missing_file_is_skipped(tmp_path: Path) -> None:
    main = write(
        tmp_path, "main.conf", "[s]", "#tryinclude missing.conf", "#tryinclude <gone/x.conf>", "a = 1"
    )
    assert section(read_config(main), "s").keys() == ["a"]


def test_include_of_a_directory_is_an_error_even_for_tryinclude(tmp_path: Path) -> None:
    (tmp_path / "dir.conf").mkdir()
    main = write(tmp_path, "main.conf", "#tryinclude dir.conf")
    err = read_error(main)
    assert str(err).startswith(f"{main}:1: cannot include 'dir.conf': ")


def test_include_loop_names_the_chain(tmp_path: Path) -> None:
    a = write(tmp_path, "a.conf", "[a]", "#include b.conf")
    b = write(tmp_path, "b.conf", "[b]", "", "#include a.conf")
    err = read_error(a)
    assert str(err) == f"{b}:3: include loop: a.conf -> b.conf -> a.conf"


def test_self_include_is_a_loop(tmp_path: Path) -> None:
    main = write(tmp_path, "main.conf", '#include "*.conf"')
    err = read_error(main)
    assert str(err) == f"{main}:1: include loop: main.conf -> main.conf"


def test_include_loop_through_a_subfolder(tmp_path: Path) -> None:
    main = write(tmp_path, "main.conf", "#include sub/x.conf")
    write(tmp_path, "sub/x.conf", "#include ../main.conf")
    err = read_error(main)
    assert str(err) == f"{tmp_path / 'sub/x.conf'}:1: include loop: main.conf -> sub/x.conf -> main.conf"


def test_same_file_included_twice_is_not_a_loop(tmp_path: Path) -> None:
    write(tmp_path, "common.conf", "shared = 1")
    main = write(tmp_path, "main.conf", "[a]", "#include common.conf", "[b]", "#include common.conf")
    config = read_config(main)
    assert section(config, "a").get("shared") == "1"
    assert section(config, "b").get("shared") == "1"


@pytest.mark.parametrize(
    ("inner", "line", "message"),
    [
        (("[x]", "a = 1", "oops"), 3, 'expected "key = value", "[section]" or "#include", got \'oops\''),
        (("[x](nope)",), 1, "section [x] inherits from unknown template 'nope'"),
        (("[x]", ";-- open"), 2, "unterminated block comment (opened at line 2)"),
        (("[x]", "#include deeper.conf"), 2, "cannot include 'deeper.conf': No such file or directory"),
    ],
)
def test_errors_inside_an_included_file_name_that_file(
    tmp_path: Path, inner: tuple[str, ...], line: int, message: str
) -> None:
    included = write(tmp_path, "inc/inner.conf", *inner)
    main = write(tmp_path, "main.conf", "[s]", "#include inc/inner.conf")
    err = read_error(main)
    assert str(err) == f"{included}:{line}: {message}"
    assert (err.file, err.line) == (included, line)


def test_invalid_utf8_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "inner.conf").write_bytes(b"[x]\n\xff = 1\n")
    main = write(tmp_path, "main.conf", "#include inner.conf")
    err = read_error(main)
    assert str(err) == f"{tmp_path / 'inner.conf'}:2: expected UTF-8 text, got byte 0xff at column 1"


def test_included_file_continues_the_current_section(tmp_path: Path) -> None:
    write(tmp_path, "part.conf", "from_part = 1", "[opened_inside]", "inside = 2")
    main = write(tmp_path, "main.conf", "[s]", "before = 0", "#include part.conf", "after = 3")
    config = read_config(main)
    sec = section(config, "s")
    assert sec.keys() == ["before", "from_part", "after"]
    assert sec.where("from_part") == f"{tmp_path / 'part.conf'}:1"
    assert section(config, "opened_inside").keys() == ["inside"]


def test_included_options_need_a_section(tmp_path: Path) -> None:
    part = write(tmp_path, "part.conf", "", "orphan = 1")
    main = write(tmp_path, "main.conf", "#include part.conf", "[s]")
    err = read_error(main)
    assert str(err) == f"{part}:2: option 'orphan' appears before any [section]"


def test_templates_work_across_included_files(tmp_path: Path) -> None:
    write(tmp_path, "templates.conf", "[tpl](!)", "type = endpoint")
    write(tmp_path, "users.conf", "[6001](tpl)", "[6001](+)", "auth = 6001")
    main = write(tmp_path, "main.conf", "#include templates.conf", "#include users.conf")
    sec = section(read_config(main), "6001")
    assert (sec.get("type"), sec.get("auth")) == ("endpoint", "6001")
    assert sec.where("type") == f"{tmp_path / 'templates.conf'}:2"


def test_block_comment_does_not_leak_into_an_included_file(tmp_path: Path) -> None:
    write(tmp_path, "part.conf", "[part]", "a = 1")
    main = write(tmp_path, "main.conf", ";-- x --; #include part.conf")
    assert read_config(main).names() == ["part"]


# --- as_bool / as_int ----------------------------------------------------------------------------------


def one_section(*text: str) -> Section:
    return section(parse("[autoban]", *text), "autoban")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("yes", True),
        ("YES", True),
        ("true", True),
        ("True", True),
        ("on", True),
        ("1", True),
        ("no", False),
        ("No", False),
        ("false", False),
        ("off", False),
        ("OFF", False),
        ("0", False),
    ],
)
def test_as_bool_accepts_asterisk_words(word: str, expected: bool) -> None:
    assert as_bool(one_section(f"enabled = {word}"), "enabled", not expected) is expected


@pytest.mark.parametrize("default", [True, False])
def test_as_bool_default_when_missing_or_empty(default: bool) -> None:
    assert as_bool(one_section(), "enabled", default) is default
    assert as_bool(one_section("enabled ="), "enabled", default) is default


def test_as_bool_uses_the_last_value() -> None:
    assert as_bool(one_section("enabled = no", "enabled = yes"), "enabled", False) is True


@pytest.mark.parametrize("word", ["maybe", "y", "2", "yess", "enabled"])
def test_as_bool_rejects_other_words(word: str) -> None:
    with pytest.raises(ConfigError) as info:
        as_bool(one_section("a = 1", f"enabled = {word}"), "enabled", False)
    assert str(info.value) == f"t.conf:3: [autoban] enabled: expected yes or no, got '{word}'"


@pytest.mark.parametrize(("text", "number"), [("0", 0), ("42", 42), ("+7", 7), ("-3", -3), ("007", 7)])
def test_as_int_good_values(text: str, number: int) -> None:
    assert as_int(one_section(f"maxretry = {text}"), "maxretry", 99) == number


def test_as_int_default_when_missing_or_empty() -> None:
    assert as_int(one_section(), "maxretry", 10) == 10
    assert as_int(one_section("maxretry ="), "maxretry", 10, minimum=50) == 10


@pytest.mark.parametrize(
    ("text", "minimum", "maximum", "expected"),
    [
        ("ten", None, None, "an integer"),
        ("1.5", None, None, "an integer"),
        ("1_000", None, None, "an integer"),
        ("\u0663", None, None, "an integer"),
        ("0x10", None, None, "an integer"),
        ("0", 1, None, "an integer >= 1"),
        ("11", None, 10, "an integer <= 10"),
        ("0", 1, 10, "an integer between 1 and 10"),
        ("11", 1, 10, "an integer between 1 and 10"),
        ("x", 1, 10, "an integer between 1 and 10"),
    ],
)
def test_as_int_bad_values(text: str, minimum: int | None, maximum: int | None, expected: str) -> None:
    sec = one_section(f"maxretry = {text}")
    with pytest.raises(ConfigError) as info:
        as_int(sec, "maxretry", 5, minimum=minimum, maximum=maximum)
    assert str(info.value) == f"t.conf:2: [autoban] maxretry: expected {expected}, got {text!r}"


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("10", 10), ("5", 5)])
def test_as_int_range_bounds_are_inclusive(text: str, number: int) -> None:
    assert as_int(one_section(f"n = {text}"), "n", 0, minimum=1, maximum=10) == number


def test_as_int_error_points_at_an_inherited_line() -> None:
    config = parse("[tpl](!)", "n = x", "[s](tpl)")
    with pytest.raises(ConfigError) as info:
        as_int(section(config, "s"), "n", 0)
    assert str(info.value) == "t.conf:2: [s] n: expected an integer, got 'x'"
