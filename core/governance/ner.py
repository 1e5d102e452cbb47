"""Person names in free text: spaCy's English NER through Presidio, made precise by rules.

:class:`PersonNameScanner` runs Presidio's :class:`~presidio_analyzer.AnalyzerEngine` with one
recognizer, :class:`~presidio_analyzer.predefined_recognizers.SpacyRecognizer` for ``PERSON``,
on a :class:`~presidio_analyzer.nlp_engine.SpacyNlpEngine` whose pipeline is loaded by path
from the folder :mod:`polyadapt.governance.spacy_model` fetches (``en_core_web_sm`` 3.8). The
default registry is never built: it would load dozens of recognizers, one of which
(``EmailRecognizer``) calls ``tldextract``, which fetches the public-suffix list from the
network. Presidio's own ``SpacyNlpEngine.load`` is not used either: it imports torch to pick a
device and may call ``spacy download``; the pipeline is loaded here and handed to the engine.
Structured types (email, phone, ...) are the regex scanners' job, so only ``PERSON`` is asked for.
The engine is built once per process and pipeline folder, on the first scan.

``en_core_web_sm`` tags many capitalised words as PERSON (``Assert``, ``Types``, ``Firefox``,
``Numeric Types``, ``assert_stmt``), calls many unfamiliar names ORG or GPE (``Deepa Choi``),
and misses names in short, context-poor records (``Hi Aarav,``, a signature line). Rules on
top of the model ("dictionary word": in the pipeline's own WordNet lemma index, any inflection):

- a model span is cut to its name: a leading honorific (``Dr.``) or role word (``Guest``,
  ``Tenant``), a trailing possessive ``'s``, and what follows a line break once the first line
  holds two or more words (``Chloe Haddad\nCustomer Care``);
- it must be name-shaped: words that start upper-case (lower-case particles such as ``van``,
  ``de``, ``bin`` in between), initials, hyphens and apostrophes; no digits, ``_``, ``=``,
  brackets, stop words, CamelCase (``CPython``; ``McDonald`` is fine), a leading or short
  all-caps word (``ASCII Backspace``, ``Mac OSX``; ``Guillaume SAVATON`` is fine), organisation
  words (``Foundation``, ``Corp``, ``Logistics``, ...) or a possessive inside (``Perl's Getopt``);
- it must not touch an email address or URL, be glued to code (``x.Name``, ``Name(``), sit on a
  ``>>>``, grammar (``::=``), table or heading line, follow ``the``/``a``/``our``, precede a
  version number (``Firefox 118``) or a common noun it modifies (``Enum class``), nor expand an
  acronym (``RFC (Registro Federal ...``, ``CBU (Clave Bancaria Uniforme``) or give a thing's
  other name (``Identity Number (Mispar Zehut``, ``operating system (Tiger Moth, on ...``); it
  must not end in a term's head word (``Public License``, ``Server Push``, ``Noto Sans``) nor be
  mostly in a non-Latin script (``Αριθμός``), where the English model's tags are guesses;
- a dictionary word of it must not also be written in lower case in the text (``Deep Learning``
  ... ``learning``);
- the text must not show it is a thing: its first word starting a capitalised phrase after a
  determiner elsewhere (``a Hive Metastore`` ... ``Hive Metastores``), a word of it used as a
  common noun elsewhere, jargon too (``your own scaffolder``, ``scaffolders``, ``Make a
  Scaffolder`` ... ``Scaffolder Options``), or a verb form opening a sentence or clause
  (``: Manages Buck build system``), or a word of it naming what has versions, forks or ports
  (``Divmod Nevow`` ... ``the latest version of Nevow``); the heads of eponymous and technical
  terms count as term heads, plurals too (``Remainder Theorem``, ``Fourier Transform``,
  ``Monte Carlo Methods``, ``Jupyter Notebook``);
- it must not be counted (``one Spark Driver``), open a command (``Install Redis on the
  server, start the daemon``; ``Check Foo is green``, its first word tagged a verb), end in a
  verb that takes an article (a definition list read as a line: ``Marshaller Generate an
  XML-RPC chunk``) or be one item of a list of single-word names of things (``FocusIn,
  MouseWheel, Gravity Reparent, Configure``), nor open with an adjective by its ending
  (``Serverless Redis``, ``Scalable Storage``);
- the form of its words must not show a thing, place or activity (:func:`_thing_by_form`): a
  participle (``Deploying Foo``, ``Threshold Accepting``), an ``-ive``/``-ic`` adjective last
  (``Foo Interactive``), an abstract noun first (``Validation Salt``), a place name's first
  word (``San Marino``), a company's closed-compound name first (``Netsoft Harbour``, like
  ``Typeworks`` last), a keyword list after it (``Foo SELECT, INSERT``), a thing's noun
  before it (``the organization Foo Commons``), a plural head made with a noun suffix (``Kotlin
  Servlets``), the whole of a quoted label (``labelled "Harold Setup"``) or a run of six
  capitalised words or more; nor may it stand in the text in the other number (``Markov
  Chains`` ... ``Markov Chain``) or modify a plural subject (``Normal Python attributes can``);
- a lone word is never a name on the model's word alone: product names stand where first names
  do (``Numba has``, ``Jira is down``); context below makes it one;
- a span of dictionary words only (``Escape Sequence``) is dropped when it has three words or
  more, a plural noun, a word not tagged a proper noun, an adjective that is no noun or verb
  first (``Strict Mode``), an adjective and adverb first and a verb that is no noun last
  (``Easy Install``), or stands in a Title Cased title; ``John Smith`` stays.

A cue other than the strongest (greetings, honorifics, fields, ...) does not make a plural
common noun a name (``certain Secondary Sections whose titles``); ``its X,`` is a possessive.

Context that makes a span a name, and finds the names the model misses: honorifics (``Mr``,
``Ms``, ``Dr``, ...), greetings (``Hi``, ``Dear``), thanks and sign-offs (``Thanks, Kenji!``,
``Regards,`` + a name line, ``. — Michael Brennan``, a name closing the text after a sentence),
``my name is``, ``this is Jordan from ...``, relations (``my husband Ricardo``), ``Name, who``,
``assigned to``, header and form fields (``From:``, ``Author:``, ``Signed-off-by:``,
``Attendees:`` with its list, ``Name:``, ``Patient:``), ``Name <email>``, ``Name wrote:``,
copyright lines (``Copyright (c) 2019 Anders Lindqvist``) and chat logs (two speaker
labels or more, one a person to the model: ``[09:15] Aiko Tanaka: ...``). Cued names must pass
the shape rules, and single dictionary words only count after the strongest cues. Two to four
capitalised words in a row that the model missed are a name when most are no dictionary words
(``I spoke to Deepa Choi``; the first must be when the model saw an ORG or GPE there; an
all-caps word counts as familiar, ``Azure OIDC``), with the same context rules. A word of a
cued or model full name is a name wherever else it stands in the same text (``Jonas Berg`` ...
``Jonas``), unless a multi-word span judged a thing holds it too (``Deploying Foo``). ``whose``
marks names of two words or more only (things have it too: ``Dockerfile whose entrypoint``).

Not found: names written in lower case (``hey its jake``), handles (``@alexis``), lone first
names without context (``Per our call, Noor will``); multi-word product and component names
the model calls PERSON whose words are names too (``Jetson Nano``, ``Depthwise Conv``,
``Django Debug Toolbar``), plural heads without a noun suffix (``Kombu Consumers``: surnames
such as ``Flowers`` are tagged the same), foreign terms (``Banque Carrefour``) and places
without a place word (``Kitty Hawk``) remain the false findings in technical prose.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyadapt.governance import spacy_model
from polyadapt.governance.findings import Finding, merge_spans

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc

# ---------------------------------------------------------------------------------------
# Name shapes
# ---------------------------------------------------------------------------------------

#: Upper-case letters of the Latin, Greek and Cyrillic scripts, for character classes
#: (the standard ``re`` module has no ``\p{Lu}``).
_UPPER = "".join(ch for ch in map(chr, [*range(0x41, 0x530), *range(0x1E00, 0x1F00)]) if ch.isupper() and ch.isalpha())
_U = f"[{_UPPER}]"
_L = r"[^\W\d_]"  # any letter
#: Lower-case particles of family names (``van der Berg``, ``de la Cruz``, ``bin Salman``).
PARTICLES = frozenset(
    "van von der den de del della dei di da das dos du la le lo bin ibn binti al el ter ten zu y e i d".split()
)
_PARTICLE = r"(?:" + "|".join(sorted(PARTICLES, key=len, reverse=True)) + r")"
#: One word of a name: ``Smith``, ``O'Neill``, ``Eun-ji``, ``d'Itri``, ``SAVATON``.
_WORD = rf"(?:d['’])?{_U}{_L}*(?:['’-]{_L}+)*"
_INITIAL = rf"{_U}\.?"
_PIECE = rf"(?:{_WORD}|{_INITIAL})"
#: Up to five name words on one line, single spaces or tabs between, particles allowed inside.
_NAME = rf"{_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_PIECE}(?![\w@])){{0,4}}"
_NAME_TOKEN = re.compile(rf"{_PIECE}|{_PARTICLE}")
_CAMEL_OK = re.compile(r"(?:Mc|Mac|O['’]|D['’]|De|Di|Da|La|Le|Van|Von|Fitz|St)[A-Z]")

#: Words in front of a name that are not part of it.
HONORIFICS = frozenset(
    "mr mrs ms miss mx dr prof professor sir dame madam lady lord rev fr sr jr mister doctor capt captain "
    "sgt officer judge president senator".split()
)
ROLE_WORDS = frozenset(
    "guest tenant patient customer caller client user employee candidate driver agent manager engineer "
    "nurse doctor owner contact author reviewer assignee reporter applicant member student teacher "
    "landlord resident visitor buyer seller courier technician cc hi hello hey dear thanks".split()
)
#: Words that follow greetings and sit in speaker or form positions but are not names.
NOT_NAMES = frozenset(
    "team all everyone everybody there folks guys sir madam customer customers colleagues friends support "
    "both you user users admin admins bot system agent operator manager hiring valued member members "
    "subject note notes action actions priority status date time re fwd fw to from cc bcc role answer "
    "question example error warning info summary update result results input output total step tip "
    "important fix cause resolution impact workaround attendees agenda description details request "
    "response reply comment comments feedback reason issue problem steps expected actual environment "
    "version category type title name phone email address company department location owner assignee "
    "reporter sender recipient customer-service sales billing hr it security legal finance marketing "
    "engineering ops morning afternoon evening night again sirs gentlemen ladies world true false none yes "
    "no ok okay thanks cheers regards best bye sincerely please urgent asap done fixed resolved closed open "
    "pending signed-off-by reviewed-by acked-by tested-by reported-by co-authored-by suggested-by".split()
)

#: Words of organisation names ("Python Software Foundation", "Acme Corp").
ORG_WORDS = frozenset(
    "inc inc. ltd ltd. llc gmbh ag corp corporation company co foundation project team software "
    "university institute association society group labs systems technologies consortium contributors "
    "developers authors community limited plc bv sa srl oy ab broadband bank logistics services solutions "
    "consulting partners holdings industries insurance airlines airways energy telecom media networks "
    "studio studios capital ventures trust hospital clinic school college council agency ministry office "
    "store shop motors pharma health healthcare retail traders international global enterprises "
    "associates brothers bros federation union club church airport station hotel restaurant cafe stichting "
    "centrum verein gesellschaft fondation fundación fondazione université universidad universität "
    # company-name heads seen mistaken for people ("Harbourline Mutual", "Kestrel Cloud")
    "mutual cloud analytics management property properties assurance financial finance mortgage realty "
    "estates construction engineering manufacturing digital technology tech design marketing legal llp lp "
    "pty nv kg spa cooperative lending payments bancorp securities investments advisors advisory freight "
    "shipping transport utilities mining foods farms brewing brewery publishing entertainment fitness "
    "dental medical pharmacy diagnostics research robotics therapeutics biotech department organization "
    "organisation".split()
)
#: Last words of technical and legal terms the model calls people ("GNU General Public License",
#: "HTTP/2 Server Push", "Named Entity Recognition", "Claude Code"); no common surname among them.
THING_WORDS = frozenset(
    "license licence licenses licences code push recognition learning server client protocol engine module "
    "library framework api sdk cli toolkit plugin extension agreement policy edition release notice terms "
    "section sections contribution contributions works document documentation specification standard format "
    "interface kernel compiler interpreter runtime browser editor console terminal database pipeline "
    "algorithm architecture dataset benchmark tutorial handbook manual guide sans serif mono emoji font fonts "
    "number "
    # heads of eponymous and technical terms ("Chinese Remainder Theorem", "Fourier Transform",
    # "Gutman Index", "Hermite Normal Form", "Model Parallel", "Jupyter Notebook", "Databricks Connect",
    # "Nginx Gateway")
    "theorem lemma conjecture corollary transform transformation equation inequality distribution index "
    "form layer method model parallel estimator decomposition integral matrix operator notebook connect gateway "
    "proxy "
    # operating systems' last words ("Ubuntu Linux", "Debian GNU/Linux")
    "linux bsd "
    # heads of services' and tools' names ("Redis Cluster", "Jupyter Lab", "Docker Hub", "Setup
    # Wizard"); none is a first or last name of Faker's locales ("Kit", "Stack", "Bridge" are)
    "cluster lab hub studio cloud shell store cache queue bus broker registry mesh node vault wizard "
    "launcher scheduler daemon sandbox playground workspace toolbox suite dashboard core designer profiler "
    "debugger installer inspector explorer writer parser".split()
)
#: Nationality and language adjectives: a span glossed by one ("Referencia Catastral (Spanish
#: real estate id)", "Mispar Zehut, Israeli identity number") is a foreign term, not a person.
NATIONALITIES = frozenset(
    "spanish french german italian dutch flemish belgian portuguese brazilian mexican argentine argentinian "
    "chilean colombian peruvian venezuelan uruguayan paraguayan bolivian ecuadorian cuban american canadian "
    "british english irish scottish welsh swedish norwegian danish finnish icelandic estonian latvian "
    "lithuanian polish czech slovak slovenian croatian serbian bosnian montenegrin macedonian albanian "
    "hungarian romanian bulgarian greek turkish cypriot maltese austrian swiss luxembourgish liechtenstein "
    "russian ukrainian belarusian moldovan georgian armenian azerbaijani kazakh israeli hebrew arabic "
    "egyptian moroccan algerian tunisian nigerian kenyan indian pakistani bangladeshi chinese japanese "
    "korean taiwanese thai vietnamese indonesian malaysian singaporean philippine filipino australian "
    "catalan basque galician andorran monegasque european latin persian iranian saudi emirati".split()
)
_TRADE_HEADS = ("works", "ware", "soft", "labs", "systems", "tech", "media", "networks", "studios")
_GLOSS_AFTER = re.compile(r"\]?[ \t]*[(,][ \t]*(?:the[ \t]+|an?[ \t]+)?([^\W\d_]+)[ \t]+[a-z]")
#: A thing's or organisation's name right before the parenthesis the span opens: the span is its
#: other name ("Identity Number (Mispar Zehut", "Revenue Department (Te Tari Tāke)"); the noun in
#: group 1, also before a purpose ("an algorithm for generating numbers (Mersenne Twister)").
_ALIAS_BEFORE = re.compile(
    r"(?<![\w-])([^\W\d_]+)(?:[ \t]+(?:for|of)[ \t]+[a-z]+ing(?:[ \t]+[a-z]+){0,2})?[ \t]*\([ \t]*$"
)
_EMAIL_OR_URL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b(?:https?|ftp)://\S+|\bwww\.\S+")
_SENTENCE_END = re.compile(r"(?:[.!?:;\"“”•*#>|+\-–—]|\n)\s*$")
_UNDERLINE = re.compile(r"[ \t]*([=*\-~^#])\1{2,}[ \t]*$")
_PLAIN_WORD = re.compile(rf"\b{_L}+\b")
#: A determiner before a capitalised span, or a version number after it: a product or a
#: defined term ("the Jira board", "any such Derivative Works", "Firefox 118"), not a person.
_PRODUCT_BEFORE = re.compile(
    r"(?i)\b(?:the|a|an|this|that|these|those|our|your|their|its|my|such|any|each|every|other|all|no)[ \t]+$"
)
_VERSION_AFTER = re.compile(r"[ \t]+[A-Za-z]{0,3}[-.]?\d")
#: A number word before a capitalised span: it counts things ("one Spark Driver", "several Worker
#: Pools"); people are not counted in front of their names. Digits are left out ("in 2005 Aaron").
_COUNT_BEFORE = re.compile(
    r"(?i)\b(?:one|two|three|four|five|six|seven|eight|nine|ten|several|multiple|many|various|another|"
    r"some|few|numerous)[ \t]+$"
)
#: Tags of finite verbs: a sentence holding one has a subject, so it is no bare command.
_FINITE_TAGS = frozenset(("VBD", "VBZ", "VBP", "MD"))
_CLAUSE_END = re.compile(r"[.!?;:\n]")
#: Endings of English adjectives made from other words ("Serverless", "Scalable", "Reversible",
#: "Powerful", "Asynchronous"): a long first word ending so describes a thing; no first name does.
_ADJECTIVE_FIRST = re.compile(r"(?i)[^\W\d_]{3,}(?:less|able|ible|ful|ous)")
#: Prefixes that make verbs of verbs ("Unmarshal", "Reparent", "Deregister", "Disconnect").
_VERB_PREFIXES = ("un", "re", "de", "dis")
#: Words of a thing that a span right after it names ("the community organization Foo Bar",
#: "the plugin Foo Bar"): with :data:`ORG_WORDS`, nouns that name software things.
_THING_NOUNS = frozenset(
    "library framework package module plugin extension tool toolkit application app service product "
    "middleware backend component utility platform system version".split()
)
#: A determiner or possessive and at most one word more right before a place: a lower-case word
#: after it is a common noun ("your own widget", "the GUI installer").
_DETERMINER_LOWER = (
    r"\b(?i:the|a|an|this|that|these|those|our|your|their|its|his|her|my|each|every|any|some|no|another)"
    r"[ \t]+(?:[\w-]+[ \t]+)?"
)
#: A capitalised word alone after the indefinite article in lower case, its word in group 1 ("a
#: Widget."): people are not counted with "a" in front of their names ("John A Smith": an initial).
_INDEFINITE_SINGLE = re.compile(rf"(?<![\w.'’-])(?:a|an)[ \t]+({_WORD})(?![\w'’-]|[ \t]+{_U})")
#: A quote mark right after a verb that gives a thing's label ("the button labelled \"", "a
#: chapter entitled '"): a span that fills the quotes is the label, not a person. "named" and
#: "called" are left out: they name people too (a character named "Tom Fields").
_LABEL_QUOTE_BEFORE = re.compile(
    r"(?i)\b(?:labell?ed|titled|entitled|marked|captioned|headed)[ \t]+(?:as[ \t]+)?[\"“'‘]$"
)
_QUOTE_AFTER = re.compile(r"[\"”'’]")
#: The next word after a place when only spaces stand between (None at punctuation).
_NEXT_WORD = re.compile(r"[ \t]*([^\W\d_]+)")
#: Plurals of nouns made with a noun-forming suffix ("Servlets", "Deployments", "Partitions",
#: "Fixtures") and names of fields of study ("Continuum Mechanics", "Fluid Dynamics"): the head of
#: a thing's name. No first or last name of Faker's locales has this form (``Clements``,
#: ``Frances``, ``Erics`` have shorter stems).
_SUFFIXED_PLURAL = re.compile(
    r"(?i)[^\W\d_]{4,}(?:lets|ments|tions|sions|nesses|ities|isms|ances|ences|ships|hoods|ures|ics)"
)
#: Nouns of devices made from verbs in "-ize"/"-ise"/"-yze" ("Sanitizer", "Optimizer", "Analyser"):
#: with the verb in the dictionary, the head of a tool's name; Faker's names of this form
#: (``Schweizer``, ``Dekeyser``, ``Wintheiser``) have no such verb.
_DEVICE_NOUN = re.compile(r"(?i)[^\W\d_]{3,}(?:izer|iser|yzer|yser)")
#: Up to three capitalised words right after "version(s) of", "fork of", "port of" or "edition of",
#: not a possessive ("the latest version of Divmod Nevow", "the first edition of Deep Alchemy"):
#: what has versions, forks, ports and editions is a thing; "a version of Mary Shelley's novel"
#: is left alone, the possessive names an author.
_VERSION_OF = re.compile(
    rf"\b(?i:versions?|forks?|ports?|editions?)[ \t]+of[ \t]+((?:{_WORD}[ \t]+){{0,2}}{_WORD})(?![\w'’-])(?![ \t]+{_U})"
)
#: A determiner, up to one modifier, and the noun right before a span ("the community organization").
_NOUN_BEFORE = re.compile(r"(?i)\b(?:the|a|an|this|that|our|its|their|your)[ \t]+(?:[a-z-]+[ \t]+)?([a-z]+)[ \t]+$")
#: Endings of adjectives that head organisation and product names ("Foo Interactive",
#: "Bar Academic", "Baz Dynamic"); no surname in Faker's 33 locales is such a dictionary adjective.
_ADJECTIVE_HEAD = re.compile(r"(?i)[^\W\d_]{3,}(?:ive|ic|ical)")
#: Endings of abstract nouns made from verbs and adjectives ("Validation", "Deployment",
#: "Readiness"): such a word opens a term's name, not a person's.
_ABSTRACT_NOUN = re.compile(r"(?i)[^\W\d_]{4,}(?:ation|ition|ment|ness)")
#: The same endings less "-ness", for a last word: no first or last name of Faker's locales ends
#: so with four letters or more before ("Clement" has three; "Guinness" ends "-ness").
_ABSTRACT_HEAD = re.compile(r"(?i)[^\W\d_]{4,}(?:ation|ition|ment)")
#: An all-caps word after the span and a comma or "and": the span's last all-caps word is one
#: item of a list of keywords ("grant Foo SELECT, INSERT and DELETE").
_CAPS_LIST_AFTER = re.compile(r"[ \t]*(?:,|\band\b|\bor\b)[ \t]*(?:and[ \t]+|or[ \t]+)?[A-Z][A-Z0-9_]+\b")
#: A capitalised word without punctuation, for runs of them (``Arcsin Benini Beta BetaPrime``).
_CAP_TOKEN = re.compile(rf"{_U}\w*")
#: Capitalised words in a row (spaces only between) from which the run is a list, not a name.
_LONG_RUN = 6
#: First words of place names that are no first or family names (model spans: ``San Marino``,
#: ``Port Louis``); ``El``, ``La``, ``Le``, ``St`` are left out (``Le Thi Hoa``).
_PLACE_FIRST_WORDS = frozenset(
    "san santa santo sankt saint new los las port fort mount mt lake north south east west upper lower "
    "cape isle".split()
)
#: First words of place names ("San Marino", "New Haven").
_PLACE_PREFIXES = frozenset(
    "san santa santo saint st sankt new los las el la le port fort mount mt lake north south east west "
    "upper lower great little greater cape isle".split()
)
#: An acronym and its parenthesis, the span inside it: "RFC (Registro Federal ...", "CBU (Clave
#: Bancaria Uniforme", "RUC number (Registro Único ...".
_ACRONYM_BEFORE = re.compile(rf"(?<![\w.]){_U}[\w.]*{_U}[\w.]*(?:[ \t]+[a-z]+)?[ \t]*\((?:[^()\n]{{0,40}}[ \t-])?$")
_DETERMINER_BEFORE = re.compile(rf"(?i)\b(?:the|a|an|this|that|our|your|their|its)[ \t]+(?:{_L}+[ \t]+)?$")
#: Nouns of time that follow a name as adverbs ("said Ada Lovelace yesterday").
_TIME_NOUNS = frozenset("yesterday today tonight tomorrow morning afternoon evening night earlier".split())
#: A short lower-case aside in parentheses right after a place (" (def)", " (sync)").
_SHORT_PARENTHESIS = re.compile(r"[ \t]*\([a-z][\w.-]{0,15}\)")
#: Endings of inflected and derived forms of a word ("writers", "configured", "deployment").
_WORD_ENDINGS = frozenset("s es d ed ing er ers ment ments ation ations able".split())
#: A token that reads as code: a dot, underscore, slash or hyphen between letters, or a leading dot.
_CODE_LIKE_TOKEN = re.compile(r"[^\W\d_][._/-][^\W\d_]|^\.[^\W\d_]|_")
#: A phrase in double quotes on one line, the phrase in group 1.
_DOUBLE_QUOTED = re.compile(r"[\"“]([^\"“”\n]{1,150})[\"”]")
#: Words Title Case leaves in lower case.
_FUNCTION_WORDS = frozenset("a an the and or but nor of in on at to for by with from as into via vs per".split())
#: A capitalised phrase after a determiner, its first word in group 1 ("a Hive Metastore").
_DETERMINED_PHRASE = re.compile(
    rf"\b(?i:the|a|an|this|that|these|those|our|your|their|its|such|any|each|every|no)[ \t]+({_WORD})[ \t]+(?={_U})"
)
#: Two to four capitalised words on one line (particles allowed between).
_PAIR = re.compile(rf"(?<![\w.@'’-]){_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_WORD}){{1,3}}(?![\w@'’-])")


@dataclass(frozen=True)
class _Lexicon:
    """English dictionary words from the pipeline's WordNet lemma index (empty when absent)."""

    index: dict[str, frozenset[str]]
    rules: dict[str, tuple[tuple[str, str], ...]]
    exceptions: frozenset[str]

    @functools.cached_property
    def words(self) -> frozenset[str]:
        return frozenset().union(*self.index.values()) if self.index else frozenset()

    def is_word(self, word: str) -> bool:
        """True when ``word`` (any case, any inflection the rules undo) is a dictionary word."""
        w = word.lower().replace("’", "'")
        if w in self.words or w in self.exceptions:
            return True
        if "-" in w.strip("-"):  # a compound: "Metadata-Version", "Requires-Python"
            return all(self.is_word(part) for part in w.split("-") if part)
        return any(
            w.endswith(old) and w[: len(w) - len(old)] + new in self.index.get(pos, ())
            for pos, rules in self.rules.items()
            for old, new in rules
            if old
        )

    def is_verb_form_only(self, word: str) -> bool:
        """True for a third-person verb form whose verb is no noun or adjective (``Manages``,
        ``Computes``): the first word of a description (``Manages Buck build system``)."""
        w = word.lower()
        if not w.endswith("s") or any(w in self.index.get(pos, ()) for pos in ("noun", "adj")):
            return False
        verbs, others = self.index.get("verb", frozenset()), self.index.get("noun", frozenset())
        return any(
            w.endswith(old) and (lemma := w[: len(w) - len(old)] + new) in verbs and lemma not in others
            for old, new in self.rules.get("verb", ())
            if old in ("s", "es", "ies")
        )

    def is_base_verb(self, word: str) -> bool:
        """True for a verb's base form, also after ``un``/``re``/``de``/``dis`` (``Generate``,
        ``Fork``, ``Unmarshal``): the word a command or a description opens with."""
        w = word.lower()
        verbs = self.index.get("verb", frozenset())
        return w in verbs or any(
            w.startswith(p) and len(w) - len(p) >= 4 and w[len(p) :] in verbs for p in _VERB_PREFIXES
        )

    def is_participle(self, word: str) -> bool:
        """True for a verb's ``-ing`` or ``-ed`` form that is no noun itself (``Deploying``,
        ``Accepting``, ``Generalized``): a word of an activity's or a method's name. Surnames of
        that shape are nouns too (``Browning``, ``Reading``, ``Whiting``) and stay names; short
        ``-ed`` words are left alone (``Jared`` reads as ``jar`` + ``ed``)."""
        w = word.lower()
        verbs = self.index.get("verb", frozenset())
        if w in self.index.get("noun", ()):
            return False
        if w.endswith("ing") and len(w) >= 6:
            return w[:-3] in verbs or w[:-3] + "e" in verbs
        if w.endswith("ed") and len(w) >= 8:
            return w[:-2] in verbs or w[:-1] in verbs
        return False

    def is_adjective_only(self, word: str) -> bool:
        """True for an adjective that is no noun or verb (``Strict``, ``Interactive``); those
        ending in ``y`` are left out: they are nicknames too (``Rusty``, ``Sunny``)."""
        w = word.lower()
        return (
            w in self.index.get("adj", ())
            and w not in self.index.get("noun", ())
            and w not in self.index.get("verb", ())
            and not w.endswith("y")
        )

    def is_adjective_first_verb_last(self, words: Sequence[str]) -> bool:
        """True for two words or more, the first an adjective and adverb that is no noun or verb,
        the last a verb that is no noun or adjective (``Easy Install``, ``Fresh Deploy``): a
        feature's or command's name, a manner and an action. People's names are nouns in the
        index (``Baker``, ``Price``) or, when they are verbs only (``Lynch``, ``Welch``,
        ``Madden``), follow first names that are no adverbs: adjectives only (``Caroline``,
        ``Dexter``, ``Rusty``, ``Sandy``), so the first word must be an adverb too (``easy``;
        the few first names that are adverbs too, ``Precious`` or ``Early``, are rare)."""
        if len(words) < 2:
            return False
        first, last = words[0].lower(), words[-1].lower()
        noun, verb, adj, adv = (self.index.get(pos, frozenset()) for pos in ("noun", "verb", "adj", "adv"))
        if first not in adj or first not in adv or first in noun or first in verb:
            return False
        return last in verb and last not in noun and last not in adj

    def is_plural_noun(self, word: str) -> bool:
        """True for a plural of a dictionary noun that is no dictionary word itself (``Types``)."""
        w = word.lower()
        if w in self.words or not w.endswith("s"):
            return False
        nouns = self.index.get("noun", frozenset())
        return any(w.endswith(old) and w[: len(w) - len(old)] + new in nouns for old, new in self.rules.get("noun", ()))


def _lexicon(nlp: Any) -> _Lexicon:
    """The lemmatizer's lookup tables of ``nlp`` as a :class:`_Lexicon`."""
    try:
        lookups = nlp.get_pipe("lemmatizer").lookups
        index_table, rules_table = lookups.get_table("lemma_index"), lookups.get_table("lemma_rules")
        exc_table = lookups.get_table("lemma_exc")
    except (KeyError, ValueError, AttributeError):
        return _Lexicon({}, {}, frozenset())
    pos_names = ("noun", "verb", "adj", "adv")
    index = {pos: frozenset(index_table.get(pos) or ()) for pos in pos_names}
    rules = {pos: tuple((old, new) for old, new in rules_table.get(pos) or ()) for pos in pos_names}
    exceptions = frozenset(word for pos in pos_names for word in (exc_table.get(pos) or {}))
    return _Lexicon(index, rules, exceptions)


# ---------------------------------------------------------------------------------------
# Context cues: patterns whose group "name" is a person name
# ---------------------------------------------------------------------------------------

_HONORIFIC_CUE = rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Rev)\.?[ \t]+(?P<name>{_NAME})"
_GREETING_CUE = (
    r"(?:^|\n)[ \t>]*(?i:hi|hello|hey|dear|good (?:morning|afternoon|evening)|morning)"
    rf"[ \t,]+(?P<name>{_NAME})[ \t]*(?=[,!:\n]|$)"
)
_THANKS_CUE = rf"\b(?i:thanks|thank you|thx|cheers|ta)\b[^.!?\n]{{0,60}}?,[ \t]*(?P<name>{_NAME})[ \t]*(?=[!.]|$)"
_THANKS_DIRECT_CUE = (
    rf"\b(?i:thanks|thank you|thx|cheers|congrats|welcome|kudos to)[ \t]+(?P<name>{_NAME})"
    r"(?=[ \t]*[,!.:]|[ \t]+(?i:for)\b)"
)
_SIGNOFF_CUE = (
    r"(?:^|\n)[ \t]*(?i:(?:best|kind|warm|warmest|many)?[ \t]*regards|best(?: wishes)?|thanks|many thanks|"
    r"thank you|cheers|sincerely|yours(?: sincerely| truly| faithfully)?|respectfully|all the best)[ \t]*[,!.]?"
    rf"[ \t]*\n[ \t]*(?P<name>{_NAME})[ \t]*(?=[,\n]|$)"
)
_DASH_CUE = (
    rf"(?:[.!?)][ \t]+[—–-]{{1,2}}|(?:^|\n)[ \t]*[—–])[ \t]*(?P<name>{_WORD}(?:[ \t]+{_PIECE}){{1,3}})[ \t]*(?=,|\n|$)"
)
_SELF_CUE = (
    rf"\b(?i:my name is|my name's|name is|name was|i am called)[ \t]+(?P<name>{_NAME})"
    rf"|\b(?i:this is|i am|i'm|it's)[ \t]+(?P<name2>{_NAME})(?=[ \t]*,|[ \t]+(?i:from|here|with|at|and)\b)"
)
_RELATION_CUE = (
    r"\b(?i:my|his|her|our|their|your)[ \t]+(?i:husband|wife|son|daughter|mother|father|mom|mum|dad|"
    r"brother|sister|partner|friend|colleague|manager|boss|neighbou?r|doctor|grandson|granddaughter|"
    rf"grandmother|grandfather|uncle|aunt|cousin|fiancée?)[ \t,]+(?P<name>{_NAME})"
)
#: A header, form or record field that holds a person: ``Author: ...``, ``name: ...`` and, as
#: JSON writes a record, ``{"full_name": "..."`` (quotes around key and value, ``_`` in the key).
_FIELD_CUE = (
    r"(?:^|\n|[.;][ \t]+|[{,][ \t]*)[ \t>]*[\"']?"
    r"(?i:from|to|cc|bcc|author|committer|signed-off-by|reviewed-by|acked-by|tested-by|"
    r"reported-by|co-authored-by|name|full[ _]?name|customer[ _]?name|contact[ _]?name|contact|patient|candidate|"
    r"first[ _]?name|last[ _]?name|given[ _]?name|family[ _]?name|surname|person|"
    r"employee|tenant|guest|applicant|assignee|assigned to|reporter|owner|requester|emergency contact|"
    r"next of kin|interviewer|interviewers|attendees|participants|present|reviewer|reviewers|"
    rf"account owner|caller|recipient|sender|student|teacher)[\"']?[ \t]*:[ \t]*[\"']?(?P<name>{_NAME})"
)
_EMAIL_CUE = rf"(?P<name>{_NAME})[ \t]*[<(\[][ \t]*[\w.+-]+(?:@|[ \t]+at[ \t]+)[\w.-]+"
_WROTE_CUE = rf"(?:^|[,>\n][ \t]*)(?P<name>{_NAME})[ \t]+(?:<[^>\n]*>[ \t]+)?(?i:wrote|writes|said)[ \t]*:"
_COPYRIGHT_CUE = (
    r"(?i:copyright|\(c\)|©)[ \t:]*(?:(?i:\(c\)|©)[ \t]*)?(?:\d{4}(?:[ \t]*[-–,][ \t]*\d{4})*[ \t]*,?[ \t]*)"
    rf"(?i:by[ \t]+)?(?P<name>{_NAME})"
)
_LAST_WORD_CUE = rf"[.!?][ \t]*\n?[ \t]*(?:[—–-][ \t]*)?(?P<name>{_NAME})[ \t]*\Z"
_WHO_CUE = rf"(?P<name>{_NAME}),?[ \t]+(?:who|whom)\b"
#: ``whose`` refers to things too (``a directory with Dockerfile whose entrypoint``): two words
#: or more only.
_WHOSE_CUE = rf"(?P<name>{_WORD}(?:[ \t]+{_PIECE}){{1,3}}),?[ \t]+whose\b"
_ASSIGNED_CUE = (
    rf"\b(?i:assigned to|reassigned to|escalated to|handed over to|on behalf of|attn\.?:?)[ \t]+(?P<name>{_NAME})"
)
_SPEAKER_CUE = (
    rf"(?:^|\n)[ \t]*(?:\[?\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:[ \t]*[AaPp][Mm])?\]?[ \t]*)?(?P<name>{_NAME}):[ \t]+\S"
)

#: How much a cue vouches for the name it marks: ``any`` takes a single dictionary word
#: (``Hi Mark,``), ``full`` not, ``unknown`` only a name with a word that is no dictionary word,
#: ``single`` a single word or a name with a word that is no dictionary word.
_CUES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), trust)
    for pattern, trust in (
        (_HONORIFIC_CUE, "any"),
        (_GREETING_CUE, "any"),
        (_THANKS_CUE, "any"),
        (_THANKS_DIRECT_CUE, "any"),
        (_SIGNOFF_CUE, "any"),
        (_DASH_CUE, "unknown"),
        (_SELF_CUE, "any"),
        (_RELATION_CUE, "any"),
        (_FIELD_CUE, "any"),
        (_EMAIL_CUE, "full"),
        (_WROTE_CUE, "full"),
        (_COPYRIGHT_CUE, "full"),
        (_LAST_WORD_CUE, "single"),
        (_WHO_CUE, "full"),
        (_WHOSE_CUE, "full"),
        (_ASSIGNED_CUE, "full"),
    )
)
_SPEAKER = re.compile(_SPEAKER_CUE)
#: A quick test that a text may hold a capitalised word at all.
_CAPITALISED = re.compile(rf"{_U}{_L}")
#: More names after a cue's first one, in lists such as ``Attendees: A B, C D and E F``.
_LIST_TAIL = re.compile(rf"(?:[ \t]*(?:,|;|\band\b|&)[ \t]*(?:and[ \t]+)?)({_NAME})")
_LIST_CUE_WORDS = re.compile(r"(?i)\b(?:to|cc|bcc|attendees|participants|present|interviewers|reviewers)[ \t]*:$")


# ---------------------------------------------------------------------------------------
# The engine (Presidio + spaCy), built once per process and pipeline folder
# ---------------------------------------------------------------------------------------


@dataclass
class _Engine:
    analyzer: Any
    nlp_engine: Any
    lexicon: _Lexicon


_ENGINE_LOCK = threading.Lock()


@functools.cache
def _engine(path: str) -> _Engine:
    """Presidio's analyzer with only the spaCy PERSON recognizer, on the pipeline at ``path``."""
    spacy_model.require_ner_packages()
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    # the parser is not needed (no dependency labels are read); the lemmatizer stays loaded but
    # idle: its WordNet index is the dictionary the rules use
    nlp = spacy_model.load_spacy_pipeline(Path(path), exclude=["parser", "senter"], disable=["lemmatizer"])
    labels = set(nlp.get_pipe("ner").labels) if "ner" in nlp.pipe_names else set()
    if "PERSON" not in labels:
        from polyadapt.errors import ConfigError

        raise ConfigError(f"the spaCy pipeline at {path} has no PERSON entity; {spacy_model.FETCH_HINT}")
    configuration = NerModelConfiguration(
        model_to_presidio_entity_mapping={"PERSON": "PERSON"},
        labels_to_ignore=sorted(labels - {"PERSON"}),
    )
    nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": path}], ner_model_configuration=configuration)
    # loaded above: SpacyNlpEngine.load would import torch for a device check and may download
    nlp_engine.nlp = {"en": nlp}  # type: ignore[assignment]
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=["PERSON"]))
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
    return _Engine(analyzer, nlp_engine, _lexicon(nlp))


def load_engine(model_path: Path | None = None) -> _Engine:
    """The cached engine for ``model_path`` (default: :func:`spacy_model.spacy_model_path`)."""
    path = str((model_path or spacy_model.spacy_model_path()).expanduser().resolve())
    with _ENGINE_LOCK:
        return _engine(path)


# ---------------------------------------------------------------------------------------
# The scanner
# ---------------------------------------------------------------------------------------


class PersonNameScanner:
    """Person names (type ``person``) by spaCy NER through Presidio, filtered and completed by
    the rules in this module's docstring.

    ``model_path``: a spaCy pipeline folder (default: ``$POLYADAPT_SPACY_MODEL`` or the cache
    folder ``polyadapt governance fetch-ner`` fills). ``max_chars``: longer texts are analysed in
    pieces of about this size, cut at line breaks. The model loads on the first scan, once per
    process; a missing model or package raises :class:`~polyadapt.errors.ConfigError`.
    """

    name = "ner"
    types: tuple[str, ...] = ("person",)

    def __init__(self, model_path: Path | str | None = None, *, max_chars: int = 100_000) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.max_chars = max_chars

    def load(self) -> None:
        """Load the model now (it loads on the first scan otherwise)."""
        load_engine(self.model_path)

    def scan(self, text: str) -> list[Finding]:
        """Every person name in ``text``."""
        return self.scan_many([text])[0]

    def scan_many(self, texts: Sequence[str], *, batch_size: int = 32) -> list[list[Finding]]:
        """The findings of each text, running the pipeline over them in batches (faster than
        one :meth:`scan` per text)."""
        results: list[list[Finding]] = [[] for _ in texts]
        pieces = [
            (i, offset, piece)
            for i, text in enumerate(texts)
            if _CAPITALISED.search(text)
            for offset, piece in _pieces(text, self.max_chars)
        ]
        if not pieces:
            return results
        engine = load_engine(self.model_path)
        artifacts = engine.nlp_engine.process_batch([piece for _, _, piece in pieces], "en", batch_size=batch_size)
        for (i, offset, piece), (_, artifact) in zip(pieces, artifacts, strict=True):
            model_spans = [
                (r.start, r.end)
                for r in engine.analyzer.analyze(piece, language="en", entities=["PERSON"], nlp_artifacts=artifact)
            ]
            for start, end in _person_spans(piece, model_spans, artifact.tokens, engine.lexicon):
                results[i].append(Finding("person", offset + start, offset + end, self.name))
        return results


def _pieces(text: str, limit: int) -> Iterable[tuple[int, str]]:
    """``text`` in pieces of at most about ``limit`` characters, cut after line breaks."""
    start = 0
    while len(text) - start > limit:
        cut = text.rfind("\n", start + limit // 2, start + limit)
        cut = cut + 1 if cut != -1 else start + limit
        yield start, text[start:cut]
        start = cut
    yield start, text[start:]


# ---------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------


@dataclass
class _Text:
    """One text and what the rules look up in it more than once."""

    text: str
    doc: Doc | None
    lexicon: _Lexicon
    model_spans: list[tuple[int, int]]

    @functools.cached_property
    def blocked(self) -> list[tuple[int, int]]:
        """Email addresses and URLs: no name is reported inside them."""
        return [(m.start(), m.end()) for m in _EMAIL_OR_URL.finditer(self.text)]

    @functools.cached_property
    def lower_tokens(self) -> str:
        """The all-lower-case tokens of the text (outside emails and URLs), space separated."""
        text = self.text
        for start, end in reversed(self.blocked):
            text = text[:start] + " " + text[end:]
        return " " + " ".join(t for t in re.findall(r"\S+", text) if t.islower()) + " "

    def lower_inside(self, word: str) -> bool:
        """True when ``word`` stands in lower case anywhere in the text, inside other words too
        (``config`` in ``configuration``): the looser test, for capitalised words the model did
        not call a person (:func:`_name_pairs`), where a familiar word is reason enough to pass."""
        return word.lower() in self.lower_tokens

    @functools.cached_property
    def lower_runs(self) -> tuple[frozenset[str], tuple[str, ...]]:
        """The letter runs of the lower-case tokens, and those of code-like tokens (with a dot,
        underscore, slash or hyphen inside or a leading dot: ``.pdbrc``, ``enum_type``)."""
        words, code = set(), []
        for token in self.lower_tokens.split():
            runs = re.findall(rf"{_L}+", token)
            words.update(runs)
            if _CODE_LIKE_TOKEN.search(token):
                code.extend(runs)
        return frozenset(words), tuple(code)

    def lower_elsewhere(self, word: str) -> bool:
        """True when ``word`` is also written in lower case in the text: a whole word or one of
        its inflected or derived forms (``writers``), the start of a code-like token's part or,
        from four letters, any place in it (``enum`` ... ``Enum``, ``.pdbrc`` ... ``Pdb``,
        ``googlefonts/ufo2ft`` ... ``Font``), or the first part of a closed compound (``fonttools``
        ... ``Font``). Inside other words it does not count: ``metadata`` is no ``Ada``,
        ``tomorrow`` no ``Tom``, ``bookmark`` no ``Mark``."""
        w = word.lower()
        if w not in self.lower_tokens:
            return False
        words, code = self.lower_runs
        if w in words or any(run.startswith(w) or len(w) >= 4 and w in run for run in code):
            return True  # identifiers hold words anywhere ("googlefonts/ufo2ft" ... "Font")
        # an inflected or derived form ("writers", "deployment" ... "Writer", "Deploy") or a
        # closed compound's first part ("fonttools" ... "Font": the rest a word of four letters or
        # more); "tomorrow" is neither "tom" + ending nor "tom" + word, "bookmark" does not start "mark"
        return any(
            run.startswith(w)
            and (run[len(w) :] in _WORD_ENDINGS or len(run) - len(w) >= 4 and self.lexicon.is_word(run[len(w) :]))
            for run in words
        )

    @functools.cached_property
    def determined_words(self) -> frozenset[str]:
        """First words of capitalised phrases that follow a determiner (``a Hive Metastore``)."""
        return frozenset(m.group(1) for m in _DETERMINED_PHRASE.finditer(self.text))

    def determined_elsewhere(self, word: str) -> bool:
        """True when ``word`` starts a capitalised phrase after a determiner somewhere in the text
        (``a Hive Metastore`` ... ``Hive Metastores``): a thing's name, not a person's."""
        return word in self.determined_words

    @functools.cached_property
    def unblocked(self) -> str:
        """The text with email addresses and URLs blanked out (same length, same offsets)."""
        text = self.text
        for start, end in self.blocked:
            text = text[:start] + " " * (end - start) + text[end:]
        return text

    @functools.cached_property
    def indefinite_words(self) -> frozenset[str]:
        """Capitalised words that stand alone after ``a``/``an`` (``by Creating a Widget.``)."""
        return frozenset(m.group(1) for m in _INDEFINITE_SINGLE.finditer(self.unblocked))

    def common_noun_elsewhere(self, word: str) -> bool:
        """True when the text uses ``word`` as a common noun: in lower case after a determiner or
        possessive and heading its phrase (``your own widget.``, ``the GUI installer and``; not
        ``the nowak script``, a name in a tool's name), in lower case in the plural (``widgets``),
        or capitalised alone after ``a``/``an`` (``a Widget``).

        Unlike :meth:`lower_elsewhere` this holds for words that are no dictionary words too
        (jargon such as ``servlet``), so it asks for a common noun's company, not any lower-case
        use: a person's name written in lower case is a handle or a login (``(jsmith)``, ``ask
        jonas``), without a determiner and not pluralised."""
        if len(word) < 3 or not word[:1].isupper():
            return False
        if word in self.indefinite_words:
            return True
        if word.lower() not in self.lower_tokens:
            return False  # fast path: no lower-case use at all
        w = re.escape(word.lower())
        if re.search(rf"(?<![\w'’./-]){w}(?:s|es)(?![\w'’-])", self.unblocked):
            return True
        # after a determiner, as the head of its phrase: punctuation or a function word follows
        # ("your own widget.", "the GUI installer and"), not a noun it modifies ("the nowak script")
        for m in re.finditer(rf"{_DETERMINER_LOWER}{w}(?![\w'’-])", self.unblocked):
            after = _NEXT_WORD.match(self.unblocked, m.end())
            if after is None or _stop_word(after.group(1)):
                return True
        return False

    @functools.cached_property
    def flat(self) -> str:
        """The text with every run of white space made one space."""
        return " ".join(self.text.split())

    @functools.cached_property
    def versioned_words(self) -> frozenset[str]:
        """Words of names that have versions, forks or ports in the text (``the latest version
        of Nevow``, ``a fork of Foo Bar``): things' names. People are not versioned: ``a
        version of Mary Shelley's novel`` has a possessive and is left out."""
        return frozenset(
            w
            for m in _VERSION_OF.finditer(self.unblocked)
            if not m.group(1).endswith(("'s", "’s"))
            for w in m.group(1).split()
        )

    @functools.cached_property
    def other_entities(self) -> list[tuple[int, int]]:
        """Spans the model labels as something other than a person (ORG, GPE, PRODUCT, ...)."""
        if self.doc is None:
            return []
        return [(e.start_char, e.end_char) for e in self.doc.ents if e.label_ not in ("PERSON", "PER")]

    def next_token(self, end: int) -> tuple[str, str]:
        """The text and tag of the first token after ``end`` (spaces skipped), or ``("", "")``."""
        if self.doc is None:
            return "", ""
        for token in self.doc:
            if token.idx >= end and not token.is_space:
                return token.text, token.tag_
        return "", ""

    def tokens(self, start: int, end: int) -> list[tuple[str, str]]:
        """The (text, tag) of each token that starts in ``start:end`` (spaces skipped)."""
        if self.doc is None:
            return []
        return [(t.text, t.tag_) for t in self.doc if start <= t.idx < end and not t.is_space]

    def tags(self, start: int, end: int) -> list[str]:
        """The tagger's POS (word class) tags of the tokens over ``start:end``."""
        if self.doc is None:
            return []
        span = self.doc.char_span(start, end, alignment_mode="expand")
        return [t.tag_ for t in span] if span is not None else []


def _person_spans(
    text: str, model_spans: list[tuple[int, int]], doc: Doc | None, lexicon: _Lexicon
) -> list[tuple[int, int]]:
    """The person-name spans of ``text``: cued spans, model spans that pass the rules, pairs of
    capitalised words the model missed, and other occurrences of the words of the names found."""
    ctx = _Text(text, doc, lexicon, model_spans)
    cued = _cued_spans(ctx)
    kept: list[tuple[int, int]] = list(cued)
    rejected: list[tuple[int, int]] = []
    for raw_start, raw_end in model_spans:
        span = _trim(text, raw_start, raw_end)
        if span is None or _overlaps(span, ctx.blocked) or _overlaps(span, cued):
            continue  # a cue already covers it (with cleaner bounds)
        if _model_span_ok(ctx, span):
            kept.append(span)
        elif _judged_thing(text, span):
            rejected.append(span)
    # the words of cued and model names only, less those of spans judged things
    repeated = _repeated_words(ctx, kept, rejected)
    kept.extend(span for span in _name_pairs(ctx) if not _overlaps(span, kept))
    kept.extend(span for span in repeated if not _overlaps(span, kept))
    return merge_spans(kept)


def _judged_thing(text: str, span: tuple[int, int]) -> bool:
    """True when a rejected model span was rejected as a thing, not for its shape: name-shaped,
    no stop word ("Just van Rossum"), and two words or more besides particles and initials
    (a lone name word is never reported alone: "Quang Le", "Paolo X." are rejected so)."""
    value = text[span[0] : span[1]]
    words = [w for w in _words(value) if w.lower() not in PARTICLES and not re.fullmatch(rf"{_U}\.?", w)]
    return len(words) >= 2 and _name_shaped(value) and not any(_stop_word(w) for w in _words(value))


def _overlaps(span: tuple[int, int], others: Iterable[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in others)


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A model span cut to the name it holds, or None when nothing name-like is left."""
    value = text[start:end]
    if "\n" in value:
        lines = value.split("\n")
        first = lines[0].strip()
        # "Chloe Haddad\nCustomer Care": the first line is the name; "Raymond\nHettinger": wrapped
        if len(first.split()) >= 2 or not all(line.strip() for line in lines):
            end = start + len(lines[0])
    # surrounding spaces and punctuation
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not (text[end - 1].isalnum() or text[end - 1] == "."):
        end -= 1
    if end > start and text[end - 1] == "." and not re.search(rf"(?:^|\s){_U}\.$", text[start:end]):
        end -= 1  # a sentence's full stop, not an initial's
    # possessive
    for suffix in ("'s", "’s", "'", "’"):
        if text[start:end].endswith(suffix) and end - len(suffix) > start:
            end -= len(suffix)
            break
    # honorifics and role words in front: "Dr. Samuel Osei", "Guest Isabella Rossi"
    while True:
        m = re.match(r"(\w+)\.?[ \t]+", text[start:end])
        if not m or not text[start + m.end() : end].strip():
            break
        word = m.group(1).lower()
        if word in HONORIFICS or (word in ROLE_WORDS and len(text[start + m.end() : end].split()) >= 2):
            start += m.end()
        else:
            break
    return (start, end) if end > start else None


def _words(value: str) -> list[str]:
    return value.replace("\n", " ").split()


def _name_shaped(value: str) -> bool:
    """True when every word of ``value`` looks like part of a person's name."""
    words = _words(value)
    if not words or len(words) > 6:
        return False
    if words[0].lower() in PARTICLES and not words[0].startswith("d'"):
        return False
    capitalised = 0
    for i, word in enumerate(words):
        if not _NAME_TOKEN.fullmatch(word):
            return False
        if i < len(words) - 1 and word.endswith(("'s", "’s")):
            return False  # a possessive inside: "Perl's Getopt"
        if word.lower() in PARTICLES:
            continue
        letters = word.replace("'", "").replace("’", "").replace("-", "").replace(".", "")
        if len(letters) > 1 and letters.isupper() and (i == 0 or len(words) == 1 or len(letters) <= 3):
            return False  # an acronym: "NAME", "ASCII Backspace" (a caps surname after a name is fine)
        inner = word[1:]
        if any(ch.isupper() for ch in inner) and not letters.isupper():
            tail = re.split(r"['’-]", word)
            if not (
                _CAMEL_OK.match(word)
                or all(
                    (part[:1].isupper() and (len(part) == 1 or part[1:].islower())) or part in ("d", "l")
                    for part in tail
                    if part
                )
            ):
                return False  # CamelCase: "CPython", "MySubclass"
        capitalised += 1
    return capitalised > 0


def _stop_word(word: str) -> bool:
    from spacy.lang.en.stop_words import STOP_WORDS

    return word.lower() in STOP_WORDS and word.lower() not in PARTICLES


def _line_of(text: str, start: int, end: int) -> tuple[str, int, int]:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end == -1 else line_end
    return text[line_start:line_end], line_start, line_end


def _sentence_start(text: str, start: int) -> bool:
    return bool(_SENTENCE_END.search(text[max(0, start - 40) : start])) or not text[:start].strip()


def _glued_to_code(text: str, start: int, end: int) -> bool:
    """True for a span glued to code characters: ``x.Name``, ``Name(``, ``Name[``, ``Name.attr``."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return before in "._/\\=`$%{[" or after in "(_/\\=`[{" or (after == "." and text[end + 1 : end + 2].isalnum())


def _codeish(text: str, start: int, end: int) -> bool:
    """True for a span on a code, grammar, heading or table line, or glued to code characters."""
    line, line_start, line_end = _line_of(text, start, end)
    stripped = line.strip()
    if stripped.startswith((">>>", "...", "$ ", "#")) or "::=" in line or stripped.startswith("|") or "|" in line:
        return True
    next_line = text[line_end + 1 : text.find("\n", line_end + 1) if text.find("\n", line_end + 1) != -1 else None]
    if stripped == text[start:end].strip() and _UNDERLINE.match(next_line or ""):
        return True  # a heading
    return _glued_to_code(text, start, end)


def _title_line(text: str, start: int, end: int) -> bool:
    """True when the span's line is a title: Title Cased words and no sentence punctuation
    (``Access to Names in Outer Scopes``; form lines such as ``Role: X, Y`` are no titles)."""
    line, line_start, _ = _line_of(text, start, end)
    if re.search(r"[.,:;!?](?:\s|$)", line.rstrip(" .")):
        return False
    return _title_cased(line[: start - line_start] + " " + line[end - line_start :])


def _quoted_title(text: str, start: int, end: int) -> bool:
    """True when the span stands inside double quotes among Title Cased words (``without using
    "ORM Bulk Update by Primary Key", invoke ...``): a section's or document's title."""
    line, line_start, _ = _line_of(text, start, end)
    for m in _DOUBLE_QUOTED.finditer(line):
        if m.start(1) <= start - line_start and end - line_start <= m.end(1):
            before, after = line[m.start(1) : start - line_start], line[end - line_start : m.end(1)]
            return _title_cased(before + " " + after)
    return False


def _title_cased(outside: str) -> bool:
    """True when at least two words of ``outside`` (a title less the span) are capitalised, and
    three in four of those that Title Case capitalises."""
    words = [w for w in re.findall(rf"{_L}+", outside) if w.lower() not in _FUNCTION_WORDS]
    capitalised = sum(w[0].isupper() for w in words)
    return capitalised >= 2 and capitalised >= 0.75 * len(words)


def _model_span_ok(ctx: _Text, span: tuple[int, int]) -> bool:
    """The rules a model span without a cue must pass (see the module docstring)."""
    text, lexicon = ctx.text, ctx.lexicon
    start, end = span
    value = text[start:end]
    if not _name_shaped(value) or any(_stop_word(w) for w in _words(value)) or _codeish(text, start, end):
        return False
    if any(w.lower() in ORG_WORDS for w in _words(value)) or _thing_or_foreign(value) or _alias(text, start):
        return False
    if _glossed_term(text, end) or (_words(value) and _trade_name(lexicon, _words(value)[-1])):
        return False
    words = [w for w in _words(value) if w.lower() not in PARTICLES and not re.fullmatch(rf"{_U}\.?", w)]
    if not words:
        return False
    tags = ctx.tags(start, end)
    next_text, next_tag = ctx.next_token(end)
    if _PRODUCT_BEFORE.search(text[max(0, start - 12) : start]) or _VERSION_AFTER.match(text, end):
        return False  # "the Tab Nanny", "Firefox 118"
    if _COUNT_BEFORE.search(text[max(0, start - 12) : start]) or _command_or_description(ctx, start, end):
        return False  # "one Spark Driver"; "Fork Django on GitHub, create ..."; "Marshaller Generate an ..."
    if _in_thing_list(ctx, start, end):
        return False  # "FocusIn, MouseWheel, Gravity Reparent, Configure, KeyPress"
    if len(words) >= 2 and _ADJECTIVE_FIRST.fullmatch(words[0]):
        return False  # "Serverless Redis": an adjective by its form describes a thing
    if _ACRONYM_BEFORE.search(text[max(0, start - 72) : start]):
        return False  # an acronym's expansion: "RFC (Registro Federal de Contribuyentes"
    if _attributive(ctx, end) or _thing_in_context(ctx, start, end):
        return False  # a modifier: "Enum class"; "a Hive Metastore" ... "Hive Metastores"
    if any(lexicon.is_word(w) and ctx.lower_elsewhere(w) for w in words):
        return False  # "Deep Learning" ... "learning": a term, not a name
    if len(words) == 1:
        # a lone capitalised word is as often a product ("Numba has", "Jira is down") as a first
        # name; only context (cues, the words of full names) makes it a name
        return False
    if _thing_by_form(ctx, start, end, words):
        return False  # "Deploying Foo", "Foo Interactive", "San Marino", "grant Foo SELECT, INSERT"
    if all(lexicon.is_word(w) for w in words):
        if len(words) >= 3 or any(lexicon.is_plural_noun(w) for w in words):
            return False
        if lexicon.is_adjective_only(words[0]):
            return False  # "Strict Mode": an adjective that is no noun describes a thing
        if lexicon.is_adjective_first_verb_last(words):
            return False  # "Easy Install": an adjective and a verb that are no nouns name a feature
        if not all(tag in ("NNP", "NNPS", "HYPH", "POS", "_SP") for tag in tags):
            return False
        if any(ctx.lower_elsewhere(w) for w in words) or _title_line(text, start, end):
            return False
        if words[0].lower() in lexicon.index.get("adj", ()) and _quoted_title(text, start, end):
            return False  # '"ORM Bulk Update by Primary Key"': an adjective and a noun in a quoted title
    return True


def _thing_by_form(ctx: _Text, start: int, end: int, words: list[str]) -> bool:
    """True when the form of the span's words or its neighbours show it names a thing, place or
    activity, not a person (each checked against the first and last names of Faker's locales):

    - a verb's ``-ing``/``-ed`` form first (``Deploying Foo``, ``Simulated Annealing``), or last
      when it is an adjective too (``Threshold Accepting``): people's names are no participles;
      surnames ending ``-ing`` are no adjectives (``Peter Lofting``);
    - a last word that is an adjective ending ``-ive``/``-ic``/``-ical`` (``Foo Interactive``,
      ``Bar Academic``): a company's or product's head, no surname;
    - a first word that is an abstract noun (``Validation Salt``, ``Deployment Target``), or a
      last word that is one made with ``-ation``, ``-ition`` or ``-ment`` (``Docutils
      Configuration``, ``Kafka Deployment``; surnames end ``-ness``: ``Guinness``, ``Furness``);
    - a first word of place names (``San Marino``, ``Port Louis``, ``New Haven``);
    - a first word that is a closed compound of a dictionary word and a trade name's head
      (``Microsoft Windows``, ``Netsoft Harbour``): a company's name before its product's; no
      first name of Faker's locales has that form (``Burbank`` is left out like last words);
    - a last all-caps word followed by a list of all-caps words (``grant Foo SELECT, INSERT and
      DELETE``): keywords; ``Guillaume SAVATON, Marie Dupont`` stays a name;
    - a last word that is a device's noun made from a verb in ``-ize``/``-ise``/``-yze`` (``Thread
      Sanitizer``, ``Query Optimizer``);
    - a last word that is a plural made with a noun-forming suffix (``-lets``, ``-ments``,
      ``-tions``, ``-ures``, ...: ``Kotlin Servlets``, ``Kafka Partitions``): things' names have
      plural heads, and no first or last name of Faker's locales has that form (plural-looking
      surnames end otherwise: ``Williams``, ``Fields``, ``Gates``, ``Jennings``, ``Chambers``);
    - the whole of a quoted label after ``labelled``/``titled``/``entitled``/``marked``/
      ``captioned``/``headed`` (``the files labelled "Setup Wizard"``): a label names a thing;
      ``named`` and ``called`` are left out, people are named so (``a character named "Tom
      Fields"``), and a name after ``labelled by`` has no quotes;
    - a thing's or organisation's noun right before it after a determiner (``the community
      organization Foo Commons``), unless a finite verb follows (``the project Ada Lovelace
      started``: there the span is a subject, a person as often as not);
    - six capitalised words or more in a row around it, spaces only between (``Arcsin Benini
      Beta BetaPrime Cauchy``): a list of names of things; no person's name is that long
      without a particle or a comma.
    """
    text, lexicon = ctx.text, ctx.lexicon
    last = words[-1].lower()
    if len(words) >= 2 and lexicon.is_participle(words[0]):
        return True
    if len(words) >= 2 and lexicon.is_participle(last) and last in lexicon.index.get("adj", ()):
        return True  # "Threshold Accepting"; a surname's "-ing" is no adjective ("Peter Lofting")
    if len(words) >= 2 and _ADJECTIVE_HEAD.fullmatch(words[-1]) and words[-1].lower() in lexicon.index.get("adj", ()):
        return True
    if len(words) >= 2 and _ABSTRACT_NOUN.fullmatch(words[0]) and words[0].lower() in lexicon.index.get("noun", ()):
        return True
    if len(words) >= 2 and _ABSTRACT_HEAD.fullmatch(words[-1]) and words[-1].lower() in lexicon.index.get("noun", ()):
        return True  # "Docutils Configuration", "Kafka Deployment": an abstract noun heads a thing
    if words[0].lower() in _PLACE_FIRST_WORDS:
        return True
    if len(words) >= 2 and _trade_name(lexicon, words[0]):
        return True  # "Microsoft Windows", "Netsoft Vault": a company's name before its product's
    if len(words[-1]) > 1 and words[-1].isupper() and _CAPS_LIST_AFTER.match(text, end):
        return True
    if (
        len(words) >= 2
        and _DEVICE_NOUN.fullmatch(words[-1])
        and words[-1].lower()[:-1] in lexicon.index.get("verb", ())
    ):
        return True  # "Thread Sanitizer", "Query Optimizer": a device named after what it does
    if len(words) >= 2 and _SUFFIXED_PLURAL.fullmatch(words[-1]):
        return True  # "Kotlin Servlets", "Kafka Partitions": a plural noun by its suffix heads a thing
    if _LABEL_QUOTE_BEFORE.search(text[max(0, start - 24) : start]) and _QUOTE_AFTER.match(text, end):
        return True  # 'the button labelled "Save Draft"': the whole of a quoted label
    noun = _NOUN_BEFORE.search(text[max(0, start - 60) : start])
    if noun and (noun.group(1).lower() in ORG_WORDS or noun.group(1).lower() in _THING_NOUNS):
        if ctx.next_token(end)[1] not in _FINITE_TAGS:
            return True
    return _capitalised_run(text, start, end) >= _LONG_RUN


#: A capitalised word and a space right before a place, and a space and one right after it.
_CAP_TOKEN_BEFORE = re.compile(rf"(?<![\w.,;:()])({_CAP_TOKEN.pattern})[ \t]$")
_CAP_TOKEN_AFTER = re.compile(rf"[ \t]({_CAP_TOKEN.pattern})(?![\w.,;:()'’-])")


def _capitalised_run(text: str, start: int, end: int) -> int:
    """How many capitalised words stand in a row with the span, single spaces between them."""
    count = len(text[start:end].split())
    position = start
    while m := _CAP_TOKEN_BEFORE.search(text[max(0, position - 40) : position]):  # leftwards
        count += 1
        position -= len(m.group(0))
    position = end
    while m := _CAP_TOKEN_AFTER.match(text, position):
        count += 1
        position = m.end()
    return count


def _thing_in_context(ctx: _Text, start: int, end: int) -> bool:
    """True when the text itself shows the span names a thing: its first word starts a
    capitalised phrase after a determiner elsewhere (``a Hive Metastore`` ... ``Hive
    Metastores``), a word of it is used as a common noun elsewhere (:meth:`_Text.common_noun_elsewhere`:
    ``Widget Features`` ... ``your own widget``), a word of it has versions, forks or ports
    there (``Divmod Nevow`` ... ``the latest version of Nevow``: people are not versioned), it
    stands there in the other number too
    (``Markov Chains`` ... ``Markov Chain``), or it opens a sentence or clause with a verb form
    (``: Manages Buck build``)."""
    words = _words(ctx.text[start:end])
    if not words:
        return False
    if ctx.determined_elsewhere(words[0]):
        return True
    if any(ctx.common_noun_elsewhere(w) for w in words):
        return True  # "Widget Features" ... "your own widget", "widgets", "a Widget"
    if any(w in ctx.versioned_words for w in words):
        return True  # "Divmod Nevow" ... "the latest version of Nevow"
    if len(words) >= 2 and _number_elsewhere(ctx, start, end):
        return True
    return _sentence_start(ctx.text, start) and ctx.lexicon.is_verb_form_only(words[0])


def _number_elsewhere(ctx: _Text, start: int, end: int) -> bool:
    """True when the span also stands in the text in the other grammatical number (``Markov
    Chains`` ... ``a Markov Chain``): people's names are not pluralised, things' names are."""
    value = " ".join(ctx.text[start:end].split())
    forms = [value + "s", value + "es"]
    if value.endswith("s"):
        forms.append(value[:-1])
    if value.endswith("es"):
        forms.append(value[:-2])
    return any(re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", ctx.flat) for form in forms)


def _command_or_description(ctx: _Text, start: int, end: int) -> bool:
    """True when a verb's base form, not a name, sits at an end of the span.

    A command: the span opens a sentence with a base verb and the sentence is a command, the tagger
    calling that word a verb (``Check Foo is green``: its object is a clause), or no finite verb in
    the sentence and another command joined on (``Fork Django on GitHub, create a branch, and show
    us``); a name opening a sentence has a finite verb after it (``Grant Evans reviewed``), none at
    all (a signature, ``Mark Evans, Account Manager``; ``Mark Evans to draft the roadmap`` joins no
    command), or a comma right after it (addressed: ``Grant Evans, please review and merge``).
    A description: the span's last word is a base verb followed by an article, its object
    (``Marshaller Generate an XML-RPC chunk``, a definition list read as one line); a name is
    followed by an article only rarely (``gave Maria Garcia a call``, whose last word is no verb).
    """
    text, lexicon = ctx.text, ctx.lexicon
    words = _words(text[start:end])
    if not words:
        return False
    next_text, _ = ctx.next_token(end)
    if len(words) >= 2 and next_text in ("a", "an", "the") and lexicon.is_base_verb(words[-1]):
        return True
    if not _sentence_start(text, start) or not lexicon.is_base_verb(words[0]) or next_text in (",", ":"):
        return False  # a name addressed or introduced: "Grant Evans, please review and merge"
    stop = _CLAUSE_END.search(text, end)
    rest = ctx.tokens(end, stop.start() if stop else len(text))
    span_tags = ctx.tags(start, end)
    if span_tags[:1] == ["VB"]:
        # the tagger reads the first word as a base verb, so the sentence is a command whatever
        # follows ("Check Foo is green"): names opening a sentence are tagged NNP ("Grant Evans
        # is here", "Mark Evans is the owner"), "Will" MD
        return True
    if any(tag in _FINITE_TAGS for _, tag in rest):
        return False
    return any(
        tag == "VB" and before.lower() in (",", "and", "or", "then") for (before, _), (_, tag) in zip(rest, rest[1:])
    )


def _in_thing_list(ctx: _Text, start: int, end: int) -> bool:
    """True when the span is one item of a comma-separated list whose other items are mostly
    single words that are CamelCase or dictionary words (``FocusIn, MouseWheel, Gravity
    Reparent, Configure, KeyPress``): a list of event, class or option names. A list of people
    (``Jonas Berg, Fatima Al-Sayed, Chen Wei`` or ``Jonas, Fatima and Chen``) has names for items."""
    text, lexicon = ctx.text, ctx.lexicon
    left = max(text.rfind(ch, 0, start) for ch in ".;:!?\n()")
    right_stops = [i for i in (text.find(ch, end) for ch in ".;:!?\n()") if i != -1]
    right = min(right_stops) if right_stops else len(text)
    before, after = text[left + 1 : start], text[end:right]
    if not (before.strip() == "" or before.rstrip().endswith(",")) or not (
        after.strip() == "" or after.lstrip().startswith(",")
    ):
        return False
    items = [re.sub(r"^(?:and|or)\s+", "", item.strip()) for item in (before + "," + after).split(",")]
    others = [item for item in items if item]
    if len(others) < 3:
        return False
    thing_like = sum(
        len(item.split()) == 1 and (not _name_shaped(item) or lexicon.is_word(item) or not item[:1].isupper())
        for item in others
    )
    return thing_like >= max(3, 2 * len(others) // 3)


def _alias(text: str, start: int) -> bool:
    """True when the span at ``start`` opens a parenthesis after a thing's or organisation's name
    or a software thing's noun (``the vendor's operating system (Tiger Moth, on ...``): in such an
    apposition the span names what the noun does, a thing. Nouns of people are not among them
    (``the applicant (Grace Bennett)``, ``the maintainer (Tom Fields)``)."""
    m = _ALIAS_BEFORE.search(text[max(0, start - 72) : start])
    if m is None:
        return False
    noun = m.group(1).lower()
    return noun in THING_WORDS or noun in ORG_WORDS or noun in _THING_NOUNS


def _glossed_term(text: str, end: int) -> bool:
    """True when the span ending at ``end`` is glossed by a nationality: ``(Spanish real estate id)``."""
    m = _GLOSS_AFTER.match(text, end)
    return m is not None and m.group(1).lower() in NATIONALITIES


def _trade_name(lexicon: _Lexicon, word: str) -> bool:
    """True for a closed compound of a dictionary word and a trade name's head (``Typeworks``,
    ``Netsoft``, ``Cloudlabs``): no surname ends so. Heads such as ``bank`` are left out on
    purpose (``Burbank``, ``Fairbank`` are surnames)."""
    w = word.lower()
    return any(
        w.endswith(head) and len(w) - len(head) >= 3 and lexicon.is_word(w[: -len(head)]) for head in _TRADE_HEADS
    )


def _thing_or_foreign(value: str) -> bool:
    """True for a span ending in a term's head word (``Public License``) or not in Latin script
    (``Αριθμός``): the English model's person tags there are guesses. Cued names are exempt."""
    words = _words(value)
    last = words[-1].lower() if words else ""
    if last in THING_WORDS or (last[-1:] == "s" and (last[:-1] in THING_WORDS or last[:-2] in THING_WORDS)):
        return True  # "Public License", "Seminumerical Algorithms", "Monte Carlo Methods"
    letters = [ch for ch in value if ch.isalpha()]
    return bool(letters) and sum(ch > "\u024f" for ch in letters) > len(letters) // 2


def _attributive(ctx: _Text, end: int) -> bool:
    """True when a common noun follows ``end``, or a short parenthesis and a plural one (``Enum
    class``, ``Normal Python (def) functions``): the words before modify it; after a person's name
    and a parenthesis comes a verb or punctuation (``Ada Lovelace (CTO) approved``). Nouns of time
    are no heads (``said Ada Lovelace yesterday``).
    A plural noun that the tagger takes for a verb counts when a modal or a verb follows it
    (``Foo Python attributes can be``: the noun is the subject; a person's verb is not
    followed by another verb)."""
    parenthesis = _SHORT_PARENTHESIS.match(ctx.text, end)
    next_text, next_tag = ctx.next_token(parenthesis.end() if parenthesis else end)
    if next_text.lower() in _TIME_NOUNS:
        return False  # "said Ada Lovelace yesterday": a time, not a modified noun
    if next_tag == "NNS" and next_text.islower() or next_tag == "NN" and next_text.islower() and not parenthesis:
        return True  # after an aside only a plural ("Normal Python (def) functions"; "Ada (admin) account")
    if not next_text.islower() or not ctx.lexicon.is_plural_noun(next_text):
        return False
    after = ctx.tokens(end, len(ctx.text))[1:2]
    return bool(after) and after[0][1] in ("MD", "VBP", "VBZ", "VBD")


def _name_pairs(ctx: _Text) -> list[tuple[int, int]]:
    """Two to four capitalised name words in a row that the model missed (``I spoke to Deepa
    Choi``): not at a sentence start, not another entity, with a word that is no dictionary
    word and not written in lower case elsewhere, on a line that is not Title Cased."""
    text, lexicon = ctx.text, ctx.lexicon
    found = []
    for m in _PAIR.finditer(text):
        trimmed = _trim(text, m.start(), m.end())
        if trimmed is None:
            continue
        start, end = trimmed
        words = _words(text[start:end])
        names = [w for w in words if w.lower() not in PARTICLES]
        # an all-caps word is an acronym as often as a surname ("Azure OIDC"): it is not unfamiliar
        unknown = [not lexicon.is_word(w) and not ctx.lower_inside(w) and not w.isupper() for w in names]
        # the model often calls unfamiliar names ORG or GPE ("Yolanda Price"): then the first word
        # must be unfamiliar; otherwise all words but one may be dictionary words
        if _overlaps((start, end), ctx.other_entities):
            familiar_ok = unknown[0] if names else False
        else:
            familiar_ok = sum(unknown) >= max(1, len(names) - 1)
        if (
            len(names) < 2
            or not familiar_ok
            or any(w.lower() in ORG_WORDS for w in names)
            or _thing_or_foreign(text[start:end])
            or _alias(text, start)
            or _glossed_term(text, end)
            or _trade_name(lexicon, names[-1])
            or _thing_by_form(ctx, start, end, names)
            or _sentence_start(text, start)
            or not _name_shaped(text[start:end])
            or any(_stop_word(w) or w.lower() in NOT_NAMES or len(w) < 2 for w in names)
            or any(lexicon.is_plural_noun(w) for w in names)
            or _DETERMINER_BEFORE.search(text[max(0, start - 30) : start])
            or _ACRONYM_BEFORE.search(text[max(0, start - 72) : start])
            or _VERSION_AFTER.match(text, end)
            or _COUNT_BEFORE.search(text[max(0, start - 12) : start])
            or _command_or_description(ctx, start, end)
            or _in_thing_list(ctx, start, end)
            or _ADJECTIVE_FIRST.fullmatch(names[0])
            or _attributive(ctx, end)
            or _thing_in_context(ctx, start, end)
            or _overlaps((start, end), ctx.blocked)
            or _codeish(text, start, end)
            or _title_line(text, start, end)
            or not all(tag in ("NNP", "NNPS", "HYPH") for tag in ctx.tags(start, end))
            or names[0].lower() in _PLACE_PREFIXES
            or any(len(w) > 14 for w in names)
            or any(w in ("e", "i", "y", "d") for w in words)
        ):
            continue
        found.append((start, end))
    return found


def _cued_spans(ctx: _Text) -> list[tuple[int, int]]:
    """Names that context marks: cues (honorifics, greetings, headers, ...) and chat speakers."""
    text, lexicon = ctx.text, ctx.lexicon
    spans: list[tuple[int, int]] = []
    for pattern, trust in _CUES:
        for m in pattern.finditer(text):
            group = "name" if m.group("name") is not None else "name2"
            found = [(m.start(group), m.end(group))]
            if _LIST_CUE_WORDS.search(text[max(0, m.start(group) - 16) : m.start(group)].rstrip()):
                position = m.end(group)
                while tail := _LIST_TAIL.match(text, position):
                    found.append((tail.start(1), tail.end(1)))
                    position = tail.end(1)
            for start, end in found:
                span = _cue_name(ctx, start, end, trust)
                if span:
                    spans.append(span)
    # chat speakers ("Aiko Tanaka: yes, ..."): labels such as "Note:" or "Requires-Dist:" look
    # the same, so only a chat log counts: two labels or more, one of them a person to the
    # model or every one of them unfamiliar words ("Aoife:", "Tomasz Nowak:")
    speakers = [m for m in _SPEAKER.finditer(text) if m.group("name").lower() not in NOT_NAMES]
    labels = {m.group("name") for m in speakers}
    chat_log = len(labels) >= 2 and (
        any(_overlaps((m.start("name"), m.end("name")), ctx.model_spans) for m in speakers)
        or all(any(not lexicon.is_word(w) and not ctx.lower_elsewhere(w) for w in label.split()) for label in labels)
    )
    for m in speakers if chat_log else ():
        start, end = m.start("name"), m.end("name")
        if all(tag in ("NNP", "NNPS") for tag in ctx.tags(start, end)):
            span = _cue_name(ctx, start, end, "any")
            if span:
                spans.append(span)
    return spans


def _cue_name(ctx: _Text, start: int, end: int, trust: str) -> tuple[int, int] | None:
    """A cue's name span, trimmed and checked, or None."""
    text, lexicon = ctx.text, ctx.lexicon
    trimmed = _trim(text, start, end)
    if trimmed is None:
        return None
    start, end = trimmed
    after = re.match(rf"[ \t]*({_L}+)", text[end:])
    if any(w.lower() in ORG_WORDS for w in _words(text[start:end])) or (after and after.group(1).lower() in ORG_WORDS):
        return None  # "Nucleic Development Team", "Acme Corp"
    if _glued_to_code(text, start, end):
        return None
    # a cue names one person: stop at the first stop word or non-name ("Hi Anna and team")
    words = []
    for m in re.finditer(r"\S+", text[start:end]):
        if _stop_word(m.group()) or m.group().lower() in NOT_NAMES:
            end = start + m.start()
            break
        words.append(m.group())
    end = start + len(text[start:end].rstrip())
    if not words or not _name_shaped(text[start:end]):
        return None
    if trust == "full" and len(words) == 1 and lexicon.is_word(words[0]):
        return None
    if len(words) == 1 and lexicon.is_word(words[0]) and _attributive(ctx, end):
        return None  # "name: String name of the collection": a type that modifies a noun
    if trust != "any" and all(lexicon.is_word(w) for w in words) and any(lexicon.is_plural_noun(w) for w in words):
        return None  # "certain Secondary Sections whose titles": a plural common noun, not a person
    if (
        trust in ("unknown", "single")
        and (trust == "unknown" or len(words) > 1)
        and all(lexicon.is_word(w) or ctx.lower_elsewhere(w) for w in words)
    ):
        return None
    if any(w.lower() in ORG_WORDS for w in words):
        return None
    return start, end


def _repeated_words(
    ctx: _Text, kept: list[tuple[int, int]], rejected: Sequence[tuple[int, int]] = ()
) -> list[tuple[int, int]]:
    """Other occurrences of the words of kept multi-word names (``Jonas`` after ``Jonas Berg``).

    A word that is also part of a model span judged a thing in the same text is not repeated
    (``Deploying Foo`` ... ``Foo Bar`` ... ``Foo``): the text uses it in a thing's name, so its
    other occurrences are that thing as likely as a person."""
    text = ctx.text
    thing_words = {word for start, end in rejected for word in _words(text[start:end])}
    words = {
        word
        for start, end in kept
        if len(_words(text[start:end])) >= 2
        for word in _words(text[start:end])
        if len(word) >= 3
        and word.lower() not in PARTICLES
        and not ctx.lexicon.is_word(word)
        and word not in thing_words
        and not ctx.common_noun_elsewhere(word)
        and word not in ctx.versioned_words
    }
    if not words:
        return []
    alternatives = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
    pattern = re.compile(rf"(?<![\w@.])(?:{alternatives})(?![\w@]|\.\w)")
    return [
        (m.start(), m.end())
        for m in pattern.finditer(text)
        if not _overlaps((m.start(), m.end()), kept) and not _overlaps((m.start(), m.end()), ctx.blocked)
    ]
