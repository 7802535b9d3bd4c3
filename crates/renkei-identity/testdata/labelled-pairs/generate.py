#!/usr/bin/env python3
"""Writes the labelled Japanese pair set (pairs.tsv) and the name counts of its notional MPI
(names.tsv). Deterministic: the same seed gives the same files. Python 3 standard library only.

    python3 crates/renkei-identity/testdata/labelled-pairs/generate.py

See README.md beside this file for what the classes are and where the name knowledge comes from.
"""

import os
import random

SEED = 3030
PERSONS = 1_000_000  # the notional regional MPI the name counts are for

# Family names of a Tohoku-like region (kanji, reading, persons per 1,000). 佐藤 is about 7% of
# some Tohoku prefectures; the rest follow the usual national order, with 菅原, 千葉, 今野,
# 菊地, 渡部 (read ワタナベ there as often as ワタベ) stronger than nationally.
FAMILY = [
    ("佐藤", "サトウ", 70), ("高橋", "タカハシ", 30), ("鈴木", "スズキ", 25),
    ("斎藤", "サイトウ", 20), ("伊藤", "イトウ", 18), ("阿部", "アベ", 17),
    ("渡辺", "ワタナベ", 15), ("佐々木", "ササキ", 15), ("菅原", "スガワラ", 10),
    ("遠藤", "エンドウ", 10), ("加藤", "カトウ", 9), ("小野", "オノ", 8), ("千葉", "チバ", 8),
    ("後藤", "ゴトウ", 7), ("今野", "コンノ", 7), ("武田", "タケダ", 6), ("三浦", "ミウラ", 6),
    ("工藤", "クドウ", 6), ("田中", "タナカ", 5), ("山田", "ヤマダ", 5), ("木村", "キムラ", 5),
    ("吉田", "ヨシダ", 5), ("小林", "コバヤシ", 5), ("中村", "ナカムラ", 5),
    ("村上", "ムラカミ", 4), ("菊地", "キクチ", 4), ("熊谷", "クマガイ", 3),
    ("横山", "ヨコヤマ", 3), ("石川", "イシカワ", 3), ("太田", "オオタ", 3), ("森", "モリ", 3),
    ("松本", "マツモト", 3), ("井上", "イノウエ", 3), ("岩崎", "イワサキ", 2),
    ("桜井", "サクライ", 2), ("長谷川", "ハセガワ", 2), ("高田", "タカダ", 2),
    ("清水", "シミズ", 2), ("原田", "ハラダ", 2), ("藤田", "フジタ", 2), ("小川", "オガワ", 2),
    ("中島", "ナカジマ", 2), ("渡部", "ワタベ", 2), ("島田", "シマダ", 1), ("安藤", "アンドウ", 2),
    ("大内", "オオウチ", 1), ("浜田", "ハマダ", 1), ("沢田", "サワダ", 1), ("広田", "ヒロタ", 1),
    ("山崎", "ヤマザキ", 2), ("上村", "ウエムラ", 1), ("河野", "コウノ", 1), ("角田", "ツノダ", 1),
    ("東", "ヒガシ", 1), ("新谷", "シンタニ", 1),
]

# Old or variant forms a clerk or an insurer's record may use for the same name.
VARIANT = {
    "高橋": ["髙橋"], "渡辺": ["渡邊", "渡邉"], "斎藤": ["齋藤", "齊藤", "斉藤"],
    "山崎": ["山﨑", "山嵜"], "桜井": ["櫻井"], "浜田": ["濱田", "濵田"], "沢田": ["澤田"],
    "広田": ["廣田"], "島田": ["嶋田"], "中島": ["中嶋"], "吉田": ["𠮷田"],
}

# The same kanji read another way (a different family): kanji, usual reading, other reading.
OTHER_READING = [
    ("小川", "オガワ", "コガワ"), ("中島", "ナカジマ", "ナカシマ"), ("上村", "ウエムラ", "カミムラ"),
    ("河野", "コウノ", "カワノ"), ("角田", "ツノダ", "カクタ"), ("東", "ヒガシ", "アズマ"),
    ("新谷", "シンタニ", "アラヤ"), ("渡部", "ワタベ", "ワタナベ"), ("菅原", "スガワラ", "スガハラ"),
    ("今野", "コンノ", "イマノ"), ("山崎", "ヤマザキ", "ヤマサキ"), ("長谷川", "ハセガワ", "ハセカワ"),
]
# Given names with two common readings: kanji, sex, reading, other reading (other sex or not).
SAME_READING_BOTH_SEXES = [("薫", "カオル"), ("忍", "シノブ"), ("渚", "ナギサ"), ("晶", "アキラ")]
GIVEN_OTHER_READING = [
    ("恵", "F", "メグミ", "M", "ケイ"), ("幸子", "F", "サチコ", "F", "ユキコ"),
    ("誠", "M", "マコト", "M", "セイ"),
    ("明", "M", "アキラ", "M", "メイ"), ("和子", "F", "カズコ", "F", "ワコ"),
    ("智子", "F", "トモコ", "F", "サトコ"), ("裕子", "F", "ユウコ", "F", "ヒロコ"),
]

# Near-miss family names: another family, not a marriage (kanji and reading both differ a little).
NEAR_FAMILY = [
    (("渡辺", "ワタナベ"), ("渡部", "ワタベ")), (("高橋", "タカハシ"), ("高梨", "タカナシ")),
    (("佐藤", "サトウ"), ("佐野", "サノ")), (("中村", "ナカムラ"), ("中林", "ナカバヤシ")),
    (("菅原", "スガワラ"), ("菅野", "スガノ")), (("小野", "オノ"), ("小野寺", "オノデラ")),
    (("藤田", "フジタ"), ("藤井", "フジイ")), (("石川", "イシカワ"), ("石田", "イシダ")),
    (("吉田", "ヨシダ"), ("吉川", "ヨシカワ")),
]

# Given names (kanji, reading, per 1,000 of that sex), skewed to the older patients a regional
# network mostly holds.
MALE = [
    ("浩", "ヒロシ", 12), ("博", "ヒロシ", 6), ("弘", "ヒロシ", 5), ("誠", "マコト", 10),
    ("茂", "シゲル", 8), ("清", "キヨシ", 8), ("勝", "マサル", 6), ("実", "ミノル", 6),
    ("健一", "ケンイチ", 6), ("和夫", "カズオ", 8), ("正", "タダシ", 7), ("隆", "タカシ", 7),
    ("翔太", "ショウタ", 5), ("大輔", "ダイスケ", 5), ("拓也", "タクヤ", 5), ("健太", "ケンタ", 5),
    ("一郎", "イチロウ", 4), ("太郎", "タロウ", 3), ("修", "オサム", 6), ("進", "ススム", 5),
    ("明", "アキラ", 6), ("聡", "サトシ", 5), ("学", "マナブ", 4), ("剛", "ツヨシ", 4),
    ("蓮", "レン", 3), ("大翔", "ヒロト", 3), ("悠真", "ユウマ", 3), ("幸男", "ユキオ", 4),
    ("秀樹", "ヒデキ", 4), ("直樹", "ナオキ", 4), ("哲也", "テツヤ", 4), ("光男", "ミツオ", 3),
    ("義雄", "ヨシオ", 4), ("昭", "アキラ", 3), ("俊夫", "トシオ", 3), ("健二", "ケンジ", 4),
]
FEMALE = [
    ("洋子", "ヨウコ", 10), ("恵子", "ケイコ", 10), ("幸子", "サチコ", 8), ("和子", "カズコ", 10),
    ("京子", "キョウコ", 6), ("裕子", "ユウコ", 7), ("美智子", "ミチコ", 7), ("久美子", "クミコ", 5),
    ("由美子", "ユミコ", 5), ("真由美", "マユミ", 5), ("恵", "メグミ", 5), ("愛", "アイ", 4),
    ("陽子", "ヨウコ", 6), ("直美", "ナオミ", 5), ("智子", "トモコ", 6), ("明美", "アケミ", 5),
    ("美穂", "ミホ", 4), ("彩", "アヤ", 3), ("美咲", "ミサキ", 4), ("結衣", "ユイ", 3),
    ("陽菜", "ヒナ", 3), ("節子", "セツコ", 5), ("典子", "ノリコ", 5), ("順子", "ジュンコ", 5),
    ("良子", "ヨシコ", 4), ("春香", "ハルカ", 3), ("千代子", "チヨコ", 4), ("美香", "ミカ", 3),
    ("房子", "フサコ", 3), ("静香", "シズカ", 2), ("真理子", "マリコ", 3), ("弘子", "ヒロコ", 4),
]

TOWNS = [
    ("990-", "山形県山形市七日町"), ("990-", "山形県山形市香澄町"), ("997-", "山形県鶴岡市馬場町"),
    ("998-", "山形県酒田市本町"), ("980-", "宮城県仙台市青葉区一番町"), ("010-", "秋田県秋田市中通"),
    ("999-", "山形県米沢市金池"), ("996-", "山形県新庄市沖の町"),
]

rng = random.Random(SEED)


def weighted(table):
    total = sum(t[-1] for t in table)
    x = rng.uniform(0, total)
    for t in table:
        x -= t[-1]
        if x <= 0:
            return t
    return table[-1]


def given(sex):
    k, r, _ = weighted(MALE if sex == "M" else FEMALE)
    return k, r


def family():
    k, r, _ = weighted(FAMILY)
    return k, r


def birth(lo=1930, hi=2015):
    return (rng.randint(lo, hi), rng.randint(1, 12), rng.randint(1, 28))


def fmt_birth(b):
    return f"{b[0]:04d}-{b[1]:02d}-{b[2]:02d}"


def home():
    prefix, town = rng.choice(TOWNS)
    postal = f"{prefix}{rng.randint(0, 9999):04d}"
    address = f"{town}{rng.randint(1, 9)}-{rng.randint(1, 30)}-{rng.randint(1, 40)}"
    phone = f"0{rng.choice(['23', '22', '18', '235', '234', '238'])}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    return phone, postal, address


def person(sex=None, fam=None, giv=None, born=None, contact=None):
    sex = sex or rng.choice("MF")
    return {
        "family": fam or family(), "given": giv or given(sex), "sex": sex,
        "birth": born or birth(), "contact": contact or home(),
    }


HIRA = {chr(c): chr(c - 0x60) for c in range(0x30A1, 0x30F7)}
HALF = dict(zip(
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワンー",
    "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝｰ"))
VOICED = dict(zip("ガギグゲゴザジズゼゾダヂヅデドバビブベボ",
                  ["ｶﾞ", "ｷﾞ", "ｸﾞ", "ｹﾞ", "ｺﾞ", "ｻﾞ", "ｼﾞ", "ｽﾞ", "ｾﾞ", "ｿﾞ", "ﾀﾞ", "ﾁﾞ", "ﾂﾞ", "ﾃﾞ", "ﾄﾞ",
                   "ﾊﾞ", "ﾋﾞ", "ﾌﾞ", "ﾍﾞ", "ﾎﾞ"]))


def half_width(s):
    return "".join(VOICED.get(c) or HALF.get(c) or {"ョ": "ｮ", "ャ": "ｬ", "ュ": "ｭ", "ッ": "ｯ"}.get(c, c) for c in s)


def record(p, *, kanji_family=None, kana=None, kanji=None, sex=None, born=None, contact=None):
    fk, fr = p["family"]
    gk, gr = p["given"]
    return {
        "kanji": kanji if kanji is not None else f"{kanji_family or fk} {gk}",
        "kana": kana if kana is not None else f"{fr} {gr}",
        "birth": fmt_birth(born or p["birth"]),
        "sex": sex if sex is not None else p["sex"],
        "contact": contact if contact is not None else p["contact"],
    }


SLIPS = [("カ", "ガ"), ("タ", "ダ"), ("シ", "ジ"), ("コ", "ゴ"), ("ハ", "バ"), ("ト", "ド"),
         ("キ", "ギ"), ("サ", "ザ"), ("ロ", "ル"), ("ミ", "ニ"), ("ツ", "シ"), ("ソ", "ン")]


def kana_slip(kana):
    spots = [i for i, c in enumerate(kana) if any(c in s for s in SLIPS)]
    if not spots:
        return None
    i = rng.choice(spots)
    c = kana[i]
    for a, b in SLIPS:
        if c == a:
            return kana[:i] + b + kana[i + 1:]
        if c == b:
            return kana[:i] + a + kana[i + 1:]
    return None


def birth_slip(b):
    y, m, d = b
    kind = rng.choice(["day", "month-day", "year"])
    if kind == "month-day" and d <= 12 and d != m:
        return (y, d, m)
    if kind == "year" and y % 10 != 9:
        return (y + 1, m, d)
    return (y, m, d + 1 if d % 10 != 9 and d < 28 else d - 1)


def moved(p):
    return home()


def partial(contact):
    """A registration that left out some contact details."""
    phone, postal, address = contact
    r = rng.random()
    if r < 0.2:
        return ("", postal, address)
    if r < 0.3:
        return (phone, "", "")
    return contact


pairs = []


def add(cls, same, a, b):
    pairs.append((cls, same, a, b))


def common_names():
    """Readings held by at least 300 of the MPI's persons (see names.tsv)."""
    return [(f, g, s) for (f, g, s, n) in name_counts() if n >= 300]


def name_counts():
    fam = {}
    for k, r, w in FAMILY:
        fam[r] = fam.get(r, 0) + w / 1000
    out = {}
    for sex, table in (("M", MALE), ("F", FEMALE)):
        giv = {}
        for k, r, w in table:
            giv[r] = giv.get(r, 0) + w / 1000
        for fr, fs in fam.items():
            for gr, gs in giv.items():
                key = (fr, gr)
                out[key] = out.get(key, 0) + fs * gs / 2
    return [(f, g, None, round(share * PERSONS)) for (f, g), share in sorted(out.items())]


def kanji_for(reading, table):
    return [t for t in table if t[1] == reading]


# ---- same person ----------------------------------------------------------------------------

for _ in range(220):  # variant kanji, sometimes a move
    fk = rng.choice(list(VARIANT))
    fr = next(r for k, r, _ in FAMILY if k == fk)
    p = person(fam=(fk, fr))
    other = p["contact"] if rng.random() < 0.7 else moved(p)
    add("same/variant-kanji", 1, record(p), record(p, kanji_family=rng.choice(VARIANT[fk]), contact=partial(other)))

for _ in range(220):  # widths, hiragana, long vowels, a missing space
    p = person()
    kana = f"{p['family'][1]} {p['given'][1]}"
    style = rng.choice(["half", "hira", "long", "nospace", "kanji-nospace"])
    if style == "half":
        b = record(p, kana=half_width(kana))
    elif style == "hira":
        b = record(p, kana="".join(HIRA.get(c, c) for c in kana))
    elif style == "long":
        b = record(p, kana=kana.replace("ウ", "ー").replace("オウ", "オー"))
    elif style == "nospace":
        b = record(p, kana=kana.replace(" ", ""))
    else:
        b = record(p, kanji=f"{p['family'][0]}{p['given'][0]}")
    add("same/kana-forms", 1, record(p), b)

for _ in range(120):  # one form missing on one side
    p = person()
    b = record(p, kana="") if rng.random() < 0.5 else record(p, kanji="")
    add("same/missing-form", 1, record(p, contact=partial(p["contact"])), b)

n = 0
while n < 160:  # a slip in the reading (voicing, a vowel, a look-alike kana)
    p = person()
    family_reading, given_reading = p["family"][1], p["given"][1]
    if rng.random() < 0.7:
        given_reading = kana_slip(given_reading)
    else:
        family_reading = kana_slip(family_reading)
    if not given_reading or not family_reading:
        continue
    contact = p["contact"] if rng.random() < 0.6 else partial(p["contact"])
    add("same/kana-slip", 1, record(p), record(p, kana=f"{family_reading} {given_reading}", contact=contact))
    n += 1

for _ in range(160):  # a slip in the birth date
    p = person()
    contact = p["contact"] if rng.random() < 0.7 else partial(p["contact"])
    add("same/birth-slip", 1, record(p), record(p, born=birth_slip(p["birth"]), contact=contact))

for _ in range(220):  # moved: new address and phone
    p = person()
    add("same/moved", 1, record(p), record(p, contact=moved(p)))

n = 0
while n < 200:  # married: an unrelated new family name, often a new home; mostly women
    sex = "F" if rng.random() < 0.9 else "M"
    p = person(sex=sex, born=birth(1950, 2000))
    new = family()
    if new[0] == p["family"][0] or new[1][:2] == p["family"][1][:2] or set(new[0]) & set(p["family"][0]):
        continue
    q = dict(p, family=new)
    contact = moved(p) if rng.random() < 0.6 else p["contact"]
    add("same/marriage", 1, record(p), record(q, contact=contact))
    n += 1

COMMON = common_names()
for _ in range(80):  # a very common name, moved
    fr, gr, _ = rng.choice(COMMON)
    sex = "M" if kanji_for(gr, MALE) else "F"
    fk = next(k for k, r, _ in FAMILY if r == fr)
    gk = rng.choice(kanji_for(gr, MALE if sex == "M" else FEMALE))[0]
    p = person(sex=sex, fam=(fk, fr), giv=(gk, gr))
    add("same/common-name-moved", 1, record(p), record(p, contact=moved(p)))

for _ in range(60):  # a very common name, a slip in the birth date and a move
    fr, gr, _ = rng.choice(COMMON)
    sex = "M" if kanji_for(gr, MALE) else "F"
    fk = next(k for k, r, _ in FAMILY if r == fr)
    gk = rng.choice(kanji_for(gr, MALE if sex == "M" else FEMALE))[0]
    p = person(sex=sex, fam=(fk, fr), giv=(gk, gr))
    add("same/common-name-birth-slip-moved", 1, record(p), record(p, born=birth_slip(p["birth"]), contact=moved(p)))

# ---- different persons ----------------------------------------------------------------------

n = 0
while n < 160:  # twins: everything but the given name
    p = person(born=birth(1940, 2015))
    q = dict(p, sex=rng.choice("MF"))
    q["given"] = given(q["sex"])
    if q["given"][1] == p["given"][1]:
        continue
    add("different/twins", 0, record(p), record(q))
    n += 1

n = 0
while n < 160:  # parent and child: the same home, a generation apart
    p = person(born=birth(1935, 1975))
    c = dict(p, sex=rng.choice("MF"), birth=birth(p["birth"][0] + 22, p["birth"][0] + 40))
    c["given"] = given(c["sex"])
    if c["given"][1] == p["given"][1]:
        continue
    add("different/parent-child", 0, record(p), record(c))
    n += 1

for _ in range(40):  # parent and child with the same given name (a son named after his father)
    p = person(sex="M", born=birth(1935, 1970))
    c = dict(p, birth=birth(p["birth"][0] + 22, p["birth"][0] + 40))
    add("different/parent-child-same-name", 0, record(p), record(c))

for _ in range(220):  # the same kanji read another way (another family), hostile: often the
    # same birth date, sex and postal district
    fk, fr, other = rng.choice(OTHER_READING)
    p = person(fam=(fk, fr))
    q = dict(p, family=(fk, other))
    if rng.random() < 0.3:
        q["birth"] = birth()
    postal = p["contact"][1] if rng.random() < 0.5 else home()[1]
    add("different/same-kanji-other-reading", 0, record(p), record(q, contact=("", postal, "")))

for _ in range(80):  # the same given-name kanji read another way, often another sex
    fk, fr, _ = weighted(FAMILY)
    gk, sex_a, ra, sex_b, rb = rng.choice(GIVEN_OTHER_READING)
    family_reading_b = fr
    for k, usual, other in OTHER_READING:
        if k == fk and rng.random() < 0.7:
            family_reading_b = other
    p = person(sex=sex_a, fam=(fk, fr), giv=(gk, ra))
    q = dict(p, sex=sex_b, given=(gk, rb), family=(fk, family_reading_b))
    add("different/same-kanji-other-given-reading", 0, record(p), record(q, contact=("", p["contact"][1], "")))

for _ in range(160):  # a near-miss family name, same given name and birth date (not a marriage)
    (ka, ra), (kb, rb) = rng.choice(NEAR_FAMILY)
    p = person(fam=(ka, ra))
    q = dict(p, family=(kb, rb))
    contact = ("", p["contact"][1], "") if rng.random() < 0.5 else home()
    add("different/near-family-name", 0, record(p), record(q, contact=contact))

for _ in range(160):  # a very common name, a birth year one apart, another home
    fr, gr, _ = rng.choice(COMMON)
    sex = "M" if kanji_for(gr, MALE) else "F"
    fk = next(k for k, r, _ in FAMILY if r == fr)
    gk = rng.choice(kanji_for(gr, MALE if sex == "M" else FEMALE))[0]
    born = birth()
    while born[0] % 10 == 9:
        born = birth()
    p = person(sex=sex, fam=(fk, fr), giv=(gk, gr), born=born)
    q = dict(p, birth=(born[0] + 1, born[1], born[2]), contact=home())
    add("different/common-name-year-apart", 0, record(p), record(q))

def slip_apart(x, y):
    """Birth dates one typing slip apart (one digit, or day and month swapped)."""
    a, b = fmt_birth(x).replace("-", ""), fmt_birth(y).replace("-", "")
    return sum(c != d for c, d in zip(a, b)) == 1 or (x[0] == y[0] and x[1] == y[2] and x[2] == y[1])


for _ in range(200):  # homonyms: the same name, born apart (more than a slip: a homonym a slip
    # apart is the common-name class below, or, for a rarer name, a fair suggestion)
    p = person()
    q = dict(p, birth=birth(), contact=home())
    if q["birth"][0] == p["birth"][0] or slip_apart(p["birth"], q["birth"]):
        continue
    add("different/homonyms", 0, record(p), record(q))

n = 0
while n < 300:  # shared birthdays: another name, the same day, often the same district
    p = person()
    q = person(sex=p["sex"], born=p["birth"])
    if q["family"][1] == p["family"][1] or q["given"][1] == p["given"][1]:
        continue
    contact = ("", p["contact"][1], "") if rng.random() < 0.3 else q["contact"]
    add("different/shared-birthday", 0, record(p), record(q, contact=contact))
    n += 1

n = 0
while n < 120:  # shared birthday and given name, another family: looks like a marriage
    sex = "F" if rng.random() < 0.8 else "M"
    p = person(sex=sex, born=birth(1950, 2000))
    q = person(sex=sex, born=p["birth"], giv=p["given"])
    if set(q["family"][0]) & set(p["family"][0]) or q["family"][1][:2] == p["family"][1][:2]:
        continue
    add("different/shared-birthday-same-given", 0, record(p), record(q))
    n += 1

n = 0
while n < 60:  # shared birthday and given name, another family and sex (薫, 忍, 渚, 晶)
    gk, reading = rng.choice(SAME_READING_BOTH_SEXES)
    p = person(sex="F", giv=(gk, reading))
    q = person(sex="M", giv=(gk, reading), born=p["birth"])
    if q["family"][0] == p["family"][0]:
        continue
    add("different/shared-birthday-same-given-other-sex", 0, record(p), record(q))
    n += 1

n = 0
while n < 100:  # spouses: one home, another given name and birth date, the other sex
    p = person(sex="M", born=birth(1935, 1990))
    q = person(sex="F", fam=p["family"], born=birth(p["birth"][0] - 5, p["birth"][0] + 5), contact=p["contact"])
    add("different/spouses", 0, record(p), record(q))
    n += 1

here = os.path.dirname(os.path.abspath(__file__))
cols = ["kanji_name", "kana_name", "birth_date", "sex", "phone", "postal_code", "address"]
with open(os.path.join(here, "pairs.tsv"), "w", encoding="utf-8") as f:
    f.write("id\tclass\tsame\t" + "\t".join("a_" + c for c in cols) + "\t" + "\t".join("b_" + c for c in cols) + "\n")
    for i, (cls, same, a, b) in enumerate(pairs, 1):
        def cells(r):
            return [r["kanji"], r["kana"], r["birth"], r["sex"], *r["contact"]]
        f.write("\t".join([str(i), cls, str(same), *cells(a), *cells(b)]) + "\n")
with open(os.path.join(here, "names.tsv"), "w", encoding="utf-8") as f:
    f.write(f"# persons\t{PERSONS}\n")
    f.write("reading\tpersons\n")
    for fr, gr, _, count in name_counts():
        if count > 0:
            f.write(f"{fr} {gr}\t{count}\n")
print(f"{len(pairs)} pairs")
