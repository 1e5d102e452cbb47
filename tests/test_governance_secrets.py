"""Secret scanner: exact value spans for every rule, near misses that must stay quiet, and a
generated corpus of config files, code, shell lines, logs and prose with a recall/precision floor.

Token literals are split (``"gh" + "p_" + body``) so that this file holds no contiguous
credential-shaped string for a push-protection scanner to trip on.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass

import pytest

from polyadapt.governance.findings import Finding
from polyadapt.governance.secrets import SecretScanner, looks_random, shannon_entropy

SCANNER = SecretScanner()


def _values(text: str) -> list[str]:
    return [text[f.start : f.end] for f in SCANNER.scan(text)]


# Bodies written once, random-looking, reused behind the format prefixes below.
B36 = "R8kL2mQx7Vt4Nn1Zp6Wc3Yh5Bj0Fs8GeTuA2"
B40 = "kJ8s/Lm2Vt9Rk4Np7Zc1Bw6Hy3Jd5Fg0Ks8Qe2Tu"
HEX32 = "3f2a9c8b7d6e5f4a3b2c1d0e9f8a7b6c"
HEX40 = HEX32 + "5d4e3f2a"
HEX64 = HEX32 + "9e1d7c3b5a4f6e2d8c0b1a3f5e7d9c2b"

AWS_ID = "AK" + "IA4HQ7ZC2LX9WMBN3T"
AWS_STS = "AS" + "IAZ7QX4HK2M9WB3LNC"
GHP = "gh" + "p_" + B36
GHO = "gh" + "o_" + B36[::-1]
GHS = "gh" + "s_" + B36[1:] + "Q"
FINE = (
    "github"
    + "_pat_"
    + "11ABQX7Z0"
    + "kL2mQx7Vt4Nn1Zp"
    + "_"
    + "6Wc3Yh5Bj0Fs8GeTuA2xR7mK9pL3vN8qT2wY6zB4cD1fH5jG0sE9uI"
)
GLPAT = "gl" + "pat-" + "Xk2fR9vLq8TzN3mWp4Yc"
GLDT = "gl" + "dt-" + "Zq8Rt2Lm9Vx4Np7Kc1Bw"
GLRT = "gl" + "rt-" + "Hy3Jd5Fg0Ks8Qe2Tu4Lm"
GR = "GR13" + "48941" + "Bw6Hy3Jd5Fg0Ks8Qe2Tu"
XOXB = "xo" + "xb-" + "2718281828-3141592653-Zq8Rt2Lm9Vx4Np7Kc1Bw6Hy3"
XOXP = "xo" + "xp-" + "2718281828-3141592653-1618033988-" + HEX32
XAPP = "xa" + "pp-1-A04LM8ZQ2-5713029384756-" + HEX64
SLACK_HOOK = "https://hooks." + "slack.com/services/T02A8KD3Q/B04LM8ZQ2/Xk2fR9vLq8TzN3mWp4YcHb7J"
NPM = "np" + "m_" + B36
PYPI = "py" + "pi-AgEIcHlwaS5vcmc" + "CJGE4YjVmNzQ2LTk3ZWMtNDk3Ni1hYTg2LWQ1NzhjYmI2ZDc4ZgACKlszLCJmYWI1"
HF = "h" + "f_" + "QwErTyUiOpAsDfGhJkLzXcVbNmQwErTyUi"
STRIPE = "sk" + "_live_" + "51HxQ2kLmN8vR3tY6wZ9pA4cE"
STRIPE_TEST = "sk" + "_test_" + "4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_RK = "rk" + "_live_" + "51HxQ2kLmN8vR3tY6wZ9pA4cE"
OPENAI = "sk" + "-proj-" + "Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9"
OPENAI_OLD = "sk" + "-" + "Xq8Lm2Vt9Rk4Np7Zc1Bw6Hy3Jd5Fg0Ks8Qe2Tu4Lm9RtQ"
ANTHROPIC = "sk" + "-ant-api03-" + "Xq8Lm2Vt9Rk4Np7Zc1Bw6Hy3Jd5Fg0Ks8Qe2Tu4_Lm9Rt-Zq8Rt2Lm9Vx4AA"
GOOGLE = "AI" + "zaSyD8kL2mQx7Vt4Nn1Zp6Wc3Yh5Bj0Fs8GeT"
GOCSPX = "GOC" + "SPX-" + "Xk2fR9vLq8TzN3mWp4YcHb7Jd1Gs"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    + ".eyJzdWIiOiI0MiIsIm5hbWUiOiJib2IiLCJpYXQiOjE3MTYyMzkwMjJ9"
    + ".Xk2fR9vLq8TzN3mWp4YcHb7Jd1Gs5Vn0Qe2Tu4Bw6Hy"
)
PEM_BODY = "MIIEpAIBAAKCAQEA7bq9sKxYz2vN3mWq8Rt4Lm2Vt9Rk4Np7Zc1Bw6Hy3Jd5Fg0Ks8Qe2Tu4Lm9Rt"
TWILIO = "S" + "K" + "2b9f8e7d6c5b4a39281706f5e4d3c2b1"
SENDGRID = "S" + "G." + "Xk2fR9vLq8TzN3mWp4YcHb" + "." + "7Jd1Gs5Vn0Qe2Tu4Bw6Hy3Jd5Fg0Ks8Qe2Tu4Lm9RtQ"
MAILCHIMP = HEX32 + "-us14"
DISCORD = "MTA4NjQ4MzI1NzQ0MjU0OTc2Mg" + "." + "GhT2kL" + "." + "Xq8Lm2Vt9Rk4Np7Zc1Bw6Hy3Jd5Fg0Ks8Qe"
DISCORD_HOOK = (
    "https://discord.com/api/"
    + "webhooks/1086483257442549762/"
    + "Xk2fR9vLq8TzN3mWp4YcHb7Jd1Gs5Vn0Qe2Tu4Bw6Hy3Jd5Fg0Ks8Qe2Tu4Lm9Rt"
)
TELEGRAM = "6123456789" + ":" + "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
DO = "do" + "p_v1_" + HEX64
SHOPIFY = "shp" + "at_" + HEX32
SQUARE = "sq0" + "atp-" + "Xk2fR9vLq8TzN3mWp4YcHb"
HEROKU_UUID = "4f9b2c7e-8a3d-4e1f-9b6c-2d7a8e3f1c5b"
HEROKU_V2 = "HR" + "KU-AA" + "Xk2fR9vLq8TzN3mWp4YcHb7Jd1Gs5Vn0Qe2Tu4Bw6Hy3Jd5Fg0Ks8Qe2Tu"
MAILGUN = "ke" + "y-" + "3f2a9c8b7d6e5f4A3b2c1d0e9f8a7b6c"
YA29 = "ya" + "29." + "a0AfH6SMBx7Vt4Nn1Zp6Wc3Yh5Bj0Fs8GeTuA2kL2mQx"
AZURE_AD = "Xk2" + "8Q~" + "fR9vLq8TzN3mWp4YcHb7Jd1Gs5Vn0Qe2T"
SAS_SIG = "Xk2fR9vLq8TzN3mWp4YcHb7Jd1Gs5Vn0Qe2Tu4%2BBw6%3D"
BEARER = "Zq8Rt2Lm9Vx4Np7Kc1Bw6Hy3Jd5Fg0Ks8"
AZURE_KEY = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6QUJDREVGR0g5OA=="
AZURE_SAK = "Qm9vZ2llV29vZ2llMTIzNDU2Nzg5MGFiY2RlZg="
AWS_SECRET = B40


PGP = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
    "lQOYBGXk2fR9vLq8TzN3mWp4YcHb7Jd1Gs5Vn0Qe2Tu4\n"
    "-----END PGP PRIVATE KEY BLOCK-----"
)


def _pem(kind: str = "RSA ", newline: str = "\n") -> str:
    lines = [PEM_BODY[:40], PEM_BODY[40:]]
    return (
        f"-----BEGIN {kind}PRIVATE KEY-----{newline}"
        + newline.join(lines)
        + f"{newline}-----END {kind}PRIVATE KEY-----"
    )


# ---------------------------------------------------------------------------------------
# Every rule: a realistic context, and exactly the value as the span
# ---------------------------------------------------------------------------------------

POSITIVES = [
    # cloud
    ("env", f"AWS_ACCESS_KEY_ID={AWS_ID}", AWS_ID),
    ("ini", f"[default]\naws_access_key_id = {AWS_STS}\nregion = eu-west-1", AWS_STS),
    ("env", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    ("yaml", f'  aws_secret_access_key: "{AWS_SECRET}"', AWS_SECRET),
    ("shell", f"aws configure set aws_secret_access_key {AWS_SECRET} --profile ci", AWS_SECRET),
    ("json", f'{{"AccessKeyId": "x", "SecretAccessKey": "{AWS_SECRET}", "Expiration": "2025"}}', AWS_SECRET),
    ("json", f'{{"type": "service_account", "private_key_id": "{HEX40}", "client_email": "a"}}', HEX40),
    ("env", f"GOOGLE_API_KEY={GOOGLE}", GOOGLE),
    ("js", f'const firebaseConfig = {{ apiKey: "{GOOGLE}", projectId: "demo" }};', GOOGLE),
    ("json", f'{{"client_id": "123.apps.googleusercontent.com", "client_secret": "{GOCSPX}"}}', GOCSPX),
    ("log", f"refreshing credentials, new access token {YA29} expires in 3599s", YA29),
    ("env", f"AZURE_CLIENT_SECRET={AZURE_AD}", AZURE_AD),
    ("prose", f"the app registration secret is {AZURE_AD} until June", AZURE_AD),
    (
        "url",
        f"https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2025-01-01&sig={SAS_SIG}",
        SAS_SIG,
    ),
    (
        "conn",
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net",
        AZURE_KEY,
    ),
    (
        "conn",
        f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={AZURE_SAK}",
        AZURE_SAK,
    ),
    # source hosting
    ("prose", f"I pasted my token {GHP} into the issue by mistake, please revoke it.", GHP),
    ("env", f"GITHUB_TOKEN={GHO}", GHO),
    ("yaml", f"    token: {GHS}", GHS),
    ("shell", f"git clone https://x-access-token:{GHS}@github.com/org/repo.git", GHS),
    ("env", f"GH_PAT={FINE}", FINE),
    ("shell", f"glab auth login --token {GLPAT}", GLPAT),
    ("yaml", f'  password: "{GLDT}"', GLDT),
    ("toml", f'token = "{GLRT}"', GLRT),
    ("shell", f"gitlab-runner register --registration-token {GR} --url https://gitlab.example.com", GR),
    # chat and mail
    ("env", f"SLACK_BOT_TOKEN={XOXB}", XOXB),
    ("python", f'client = WebClient(token="{XOXP}")', XOXP),
    ("yaml", f"slack:\n  app_token: {XAPP}", XAPP),
    ("env", f"SLACK_WEBHOOK_URL={SLACK_HOOK}", SLACK_HOOK),
    ("env", f"TWILIO_API_KEY={TWILIO}", TWILIO),
    ("python", f'sg = SendGridAPIClient("{SENDGRID}")', SENDGRID),
    ("json", f'{{"mailchimp": {{"api_key": "{MAILCHIMP}"}}}}', MAILCHIMP),
    ("prose", f"mailgun said to use {MAILGUN} for the sandbox domain", MAILGUN),
    ("env", f"DISCORD_BOT_TOKEN={DISCORD}", DISCORD),
    ("prose", f"post alerts to {DISCORD_HOOK} from the job", DISCORD_HOOK),
    ("python", f'bot = telebot.TeleBot("{TELEGRAM}")', TELEGRAM),
    # package registries and ML
    ("npmrc", f"//registry.npmjs.org/:_authToken={NPM}", NPM),
    ("pypirc", f"[pypi]\nusername = __token__\npassword = {PYPI}", PYPI),
    ("shell", f"huggingface-cli login --token {HF}", HF),
    ("python", f'login(token="{HF}")', HF),
    # payments, AI, hosting
    ("env", f"STRIPE_SECRET_KEY={STRIPE}", STRIPE),
    ("python", f'stripe.api_key = "{STRIPE_TEST}"', STRIPE_TEST),
    ("prose", f"restricted key {STRIPE_RK} for the reporting job", STRIPE_RK),
    ("env", f"OPENAI_API_KEY={OPENAI}", OPENAI),
    ("python", f'client = OpenAI(api_key="{OPENAI_OLD}")', OPENAI_OLD),
    ("shell", f'curl https://api.anthropic.com/v1/messages -H "x-api-key: {ANTHROPIC}"', ANTHROPIC),
    ("env", f"DIGITALOCEAN_TOKEN={DO}", DO),
    ("ruby", f"ShopifyAPI::Context.setup(api_secret_key: '{SHOPIFY}')", SHOPIFY),
    ("env", f"SQUARE_ACCESS_TOKEN={SQUARE}", SQUARE),
    ("env", f"HEROKU_API_KEY={HEROKU_UUID}", HEROKU_UUID),
    ("prose", f"the heroku api key is {HEROKU_UUID}, rotate it", HEROKU_UUID),
    ("env", f"HEROKU_TOKEN={HEROKU_V2}", HEROKU_V2),
    # tokens and keys by structure
    ("log", f"2024-05-01T12:00:03Z DEBUG request Authorization: Bearer {JWT} status=200", JWT),
    ("prose", f"session cookie was {JWT}", JWT),
    ("shell", f'curl -s https://api.example.com/v2/jobs -H "Authorization: Bearer {BEARER}"', BEARER),
    ("python", f'headers = {{"Accept": "application/json", "X-Forwarded": "1"}}; auth = "Bearer {BEARER}"', BEARER),
    ("pem", _pem(), _pem()),
    ("pem", "key:\n" + _pem("EC "), _pem("EC ")),
    ("pem", _pem("OPENSSH "), _pem("OPENSSH ")),
    ("pem", _pem("ENCRYPTED "), _pem("ENCRYPTED ")),
    ("pem", _pem(""), _pem("")),
    ("json", '{"private_key": "' + _pem("", "\\n") + '\\n"}', _pem("", "\\n")),
    ("pgp", PGP, PGP),
    # passwords in URLs
    ("env", "DATABASE_URL=postgres://app:pa55word@db.internal:5432/app", "pa55word"),
    ("contract", "postgres://user:pa55word@host/db", "pa55word"),
    ("yaml", "  url: mongodb+srv://svc:Q7v%40x9Lm@cluster0.mongodb.net/prod", "Q7v%40x9Lm"),
    ("python", 'engine = create_engine("mysql+pymysql://root:S3cr3t!x@127.0.0.1/shop")', "S3cr3t!x"),
    ("env", "REDIS_URL=redis://:r3d1sPass@cache:6379/0", "r3d1sPass"),
    ("prose", "the broker is amqp://worker:Tz9pLq2w@mq.internal:5672/ now", "Tz9pLq2w"),
    ("shell", "git remote add origin https://bob:hunter2x@git.example.com/team/app.git", "hunter2x"),
    ("env", "MONGO=mongodb://admin:p@ss!w0rd@mongo:27017", "p@ss!w0rd"),
    # *_PASSWORD / *_SECRET / *_TOKEN / *_KEY / *_PASS / *_PWD assignments
    ("env", "DB_PASSWORD=hunter2", "hunter2"),
    ("env", "export API_TOKEN=9f8e7d6c5b4a39281706f5e4d3c2b1a0", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ("env", 'SMTP_PASS="Mail!2024x"', "Mail!2024x"),
    ("env", "REDIS_PWD=r3d1s-Pw", "r3d1s-Pw"),
    ("env", "JWT_SECRET=Zq8Rt2Lm9Vx4Np7Kc1Bw", "Zq8Rt2Lm9Vx4Np7Kc1Bw"),
    ("env", "ENCRYPTION_KEY=Xk2fR9vLq8TzN3mWp4YcHb7Jd1Gs5Vn0", "Xk2fR9vLq8TzN3mWp4YcHb7Jd1Gs5Vn0"),
    ("env", "DB_PASSWORD_PROD=Pr0d-Pa55!", "Pr0d-Pa55!"),
    (
        "compose",
        "    environment:\n      - POSTGRES_PASSWORD=Pg_s3cret_2024\n      - POSTGRES_DB=app",
        "Pg_s3cret_2024",
    ),
    ("compose", "    environment:\n      MYSQL_ROOT_PASSWORD: r00tPa55!\n      MYSQL_DATABASE: shop", "r00tPa55!"),
    ("yaml", 'password: "Summer2024!"', "Summer2024!"),
    ("yaml", "database:\n  user: app\n  password: Xy7kL9mQ\n  host: db", "Xy7kL9mQ"),
    ("json", '{"username": "svc", "password": "Kx93!mPq"}', "Kx93!mPq"),
    ("json", '{"client_secret": "q8TzV3nW1yK6rB0p"}', "q8TzV3nW1yK6rB0p"),
    ("json-in-string", '"{\\"password\\": \\"Kx93!mPq\\"}"', "Kx93!mPq"),
    ("ini", "[database]\npassword = Kx93mPq2\nport = 5432", "Kx93mPq2"),
    ("properties", "spring.datasource.password=Xy7#kL9!mQ", "Xy7#kL9!mQ"),
    ("python", 'password = "hunter22"', "hunter22"),
    ("python", 'self.api_key = "Xk2fR9vLq8TzN3mWp4Yc"', "Xk2fR9vLq8TzN3mWp4Yc"),
    ("python", 'SECRET_KEY = "django-insecure-8k#2m!qx7v$t4n1zp6wc3"', "django-insecure-8k#2m!qx7v$t4n1zp6wc3"),
    ("python", 'api_key: str = "Xk2fR9vLq8TzN3mWp4Yc"', "Xk2fR9vLq8TzN3mWp4Yc"),
    ("python", 'os.environ["DB_PASSWORD"] = "Kx93!mPq"', "Kx93!mPq"),
    ("python", 'conn = psycopg2.connect(host="db", password="Kx93!mPq")', "Kx93!mPq"),
    ("js", 'const apiKey = "Xk2fR9vLq8TzN3mWp4Yc";', "Xk2fR9vLq8TzN3mWp4Yc"),
    ("go", 'password := "Kx93!mPq"', "Kx93!mPq"),
    ("php", "$db_pass = 'Kx93!mPq';", "Kx93!mPq"),
    ("php", "'password' => 'Kx93!mPq',", "Kx93!mPq"),
    ("terraform", 'resource "x" "y" {\n  master_password = "Tf-Pa55w0rd!"\n}', "Tf-Pa55w0rd!"),
    ("cli", "mysqldump --password=Tr0ub4dor&3 --host db shop", "Tr0ub4dor&3"),
    ("cli", "mysql --password S3cr3tPass! -h db", "S3cr3tPass!"),
    ("cli", "curl -u admin:Kx93mPq2 https://api.example.com/v1", "Kx93mPq2"),
    ("conn", "Server=tcp:db.example.net;Database=app;User Id=sa;Password=Kx93!mPq2;", "Kx93!mPq2"),
    ("url", "GET /login?user=bob&password=Kx93mPq2&next=/home HTTP/1.1", "Kx93mPq2"),
    ("log", "2024-05-01 12:00:01 WARN login failed user=bob password=hunter2 ip=10.0.0.5", "hunter2"),
    ("xml", "<datasource><user>app</user><password>Kx93!mPq</password></datasource>", "Kx93!mPq"),
    ("nuget", '<add key="ClearTextPassword" value="Nu-G3t!pass" />', "Nu-G3t!pass"),
    ("sql", "CREATE USER app IDENTIFIED BY 'Kx93!mPq';", "Kx93!mPq"),
    ("sql", "ALTER ROLE app WITH PASSWORD 'Kx93!mPq';", "Kx93!mPq"),
    ("netrc", "machine api.example.com login bob password Kx93mPq2", "Kx93mPq2"),
    ("header", "X-API-Key: 4f9b2c7e8a3d4e1f9b6c2d7a8e3f1c5b", "4f9b2c7e8a3d4e1f9b6c2d7a8e3f1c5b"),
    ("header", "Authorization: Basic Ym9iOkt4OTMhbVBx", "Ym9iOkt4OTMhbVBx"),
    ("prose", "Username: bob / Password: Summer2024! (change it on first login)", "Summer2024!"),
    ("prose", "Hi support, my password is Summer2024! and I still can't log in.", "Summer2024!"),
    ("prose", 'the new password will be "Welcome1!" until you change it', "Welcome1!"),
    ("markdown", "**Password:** `Summer2024!`", "Summer2024!"),
    ("markdown", "**API key**: Xk2fR9vLq8TzN3mWp4Yc", "Xk2fR9vLq8TzN3mWp4Yc"),
    ("cli", "mysql -uroot -pS3cretPw shop < dump.sql", "S3cretPw"),
    ("cli", "sshpass -p 'S3cretPw' ssh deploy@host", "S3cretPw"),
    ("cli", "kubectl create secret generic db --from-literal=password=Kx93mPq2x", "Kx93mPq2x"),
    ("cli", 'docker run -e "DB_PASSWORD=Kx93mPq2" postgres', "Kx93mPq2"),
    ("cli", "PGPASSWORD=Kx93mPq2 psql -h db -U app", "Kx93mPq2"),
    ("powershell", '$env:API_KEY = "Xk2fR9vLq8TzN3mWp4Yc"', "Xk2fR9vLq8TzN3mWp4Yc"),
    ("k8s", "kind: Secret\ndata:\n  password: cGFzc3dvcmQxMjM=", "cGFzc3dvcmQxMjM="),
    ("ansible", "ansible_become_password: Kx93mPq2", "Kx93mPq2"),
    ("header", '"Authorization": "Token 4f9b2c7e8a3d4e1f9b6c2d7a8e3f1c5b"', "4f9b2c7e8a3d4e1f9b6c2d7a8e3f1c5b"),
    ("cut-short", '{"user": "svc", "api_key": "Xk2fR9vLq8TzN3mWp4Yc', "Xk2fR9vLq8TzN3mWp4Yc"),
]


@pytest.mark.parametrize(
    ("context", "text", "value"), POSITIVES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(POSITIVES)]
)
def test_positive_value_is_the_exact_span(context, text, value):
    assert _values(text) == [value]


def test_aws_pair_in_a_credentials_file_gives_two_spans():
    text = f"[default]\naws_access_key_id = {AWS_ID}\naws_secret_access_key = {AWS_SECRET}\n"
    assert _values(text) == [AWS_ID, AWS_SECRET]


def test_gcp_service_account_gives_key_id_and_key():
    pem = _pem("", "\\n")
    text = json.dumps({"type": "service_account", "private_key_id": HEX40, "client_email": "x"})[:-1]
    text += ', "private_key": "' + pem + '\\n"}'
    found = _values(text)
    assert found[0] == HEX40 and pem in found[1]


def test_redaction_keeps_the_key_name():
    text = f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}"
    (finding,) = SCANNER.scan(text)
    assert text[: finding.start] == "AWS_SECRET_ACCESS_KEY=" and finding.end == len(text)


def test_findings_follow_the_scanner_contract():
    text = f"token {GHP} and DB_PASSWORD=hunter2"
    findings = SCANNER.scan(text)
    assert all(isinstance(f, Finding) and f.type == "secret" and f.scanner == "secret" for f in findings)
    assert SCANNER.name == "secret" and SCANNER.types == ("secret",)
    assert [text[f.start : f.end] for f in findings] == [GHP, "hunter2"]
    assert SCANNER.scan("") == [] and SCANNER.scan("nothing to see here") == []


# ---------------------------------------------------------------------------------------
# Near misses: placeholders, references in code, look-alikes
# ---------------------------------------------------------------------------------------

NEGATIVES = [
    # code that references a credential rather than holding one
    "password = dest.password",
    "conn = connect(host, password=self.password)",
    "client = Client(user=user, password=password, token=token)",
    "token = get_token()",
    "secret_key=settings.SECRET_KEY",
    "SECRET_KEY = settings.SECRET_KEY",
    "def login(user: str, password: str) -> bool:",
    "def login(user, password=None, token: Optional[str] = None):",
    "password: str = Field(..., min_length=8)",
    "password = models.CharField(max_length=128)",
    'passwd = input("Password: ")',
    "password = getpass.getpass()",
    'api_key = os.environ["API_KEY"]',
    'api_key = os.environ.get("API_KEY", "")',
    "const token = process.env.GITHUB_TOKEN;",
    "this.password = password;",
    '"password": password,',
    "auth = HTTPBasicAuth(user, pwd)",
    'csrf_token = request.cookies.get("csrftoken")',
    'user_password = form.cleaned_data["password"]',
    "if password == confirm_password:",
    'log.info("password=%s", pw)',
    'raise ValueError("wrong password")',
    "withCredentials: true",
    "password: null",
    "password = None",
    "token?: string;",
    # placeholders and templates
    'api_key = "<your-api-key>"; password = "changeme"; token: ${API_TOKEN}',
    'password = "aaaaaaaaaaaa"; secret = "${{ secrets.X }}"',
    "DB_PASSWORD=${DB_PASSWORD}",
    "DB_PASSWORD=",
    'export API_KEY=""',
    'password: "{{ vault_db_password }}"',
    "password: <%= ENV['DB_PASSWORD'] %>",
    "password=%(db_password)s",
    'password: "********"',
    "password: REDACTED",
    'token = "dummy-token-for-tests"',
    "API_TOKEN=your_api_token_here",
    "SECRET_KEY=change-me",
    "password: !vault |",
    "password=$(cat /run/secrets/pw)",
    "GITHUB_TOKEN=gh" + "p_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "export OPENAI_API_KEY=sk-...",
    "OPENAI_API_KEY=sk" + "-1234567890abcdef1234567890abcdef",
    "SLACK_WEBHOOK=https://hooks." + "slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\n<your private key here>\n-----END PRIVATE KEY-----",
    # the AWS documentation keys
    "aws_access_key_id = AK" + "IAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    # URLs and remotes without a password, or with a template or default one
    "git@github.com:org/repo.git and https://github.com/x/y",
    "ssh://git@gitlab.com:22/group/project.git",
    "https://bob@bitbucket.org/team/repo.git",
    "postgres://user:password@localhost:5432/db",
    "redis://:${REDIS_PASSWORD}@redis:6379/0",
    "amqp://guest:guest@localhost:5672/",
    "https://user:<password>@host/path",
    # prose
    "The password is stored hashed with bcrypt.",
    "Password: must be at least 12 characters",
    "token: the token expires in one hour",
    "Please rotate your API key: visit the console.",
    "set the SECRET_KEY environment variable before starting",
    "Reset your password by following the link we sent.",
    "your password was reset successfully",
    "The password is SHA-256 hashed and 2FA-protected.",
    "Password is required",
    "The password must be at least 8 characters.",
    "mysql -u root -p shop",
    "Authorization: Bearer YOUR_TOKEN",
    "Authorization: Bearer <token>",
    "Authorization: Bearer ${TOKEN}",
    # near misses from gitleaks' generic rule
    'publicToken = "9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit"',
    "csrf-token=Mj2qykJO5rELyHgezQ69nzUX0i3OH67V7+V4eUrLfpuyOuxmiW9rhROG/Whikle15syazJOkrjJa3U2AbhIvUw==",
    'clientId = "73082700-1f09-405b-80d0-3131bfd6272d"',
    'LLM_SECRET_NAME = "NEXUS-GPT4-API-KEY"',
    "secret_length = X25519.secret_length",
    "    access_token_url='https://github.com/login/oauth/access_token',",
    '"accessor":"rA1wk0Y45YCufyfq",',
    "primaryKey=Xk2fR9vLq8TzN3mWp4Yc-Hb7Jd1Gs5",
    "IceSSL.KeyFile=s_rsa1024_priv.pem",
    "schemaKey = 'DOC_Vector_5_32'",
    '"kms_key_id": "555ea4a3-d53a-4412-9c66-3a7cb667b0d6",',
    "PuttyPassword=0",
    "withCredentials([usernamePassword(credentialsId: '29f63271-dc2f-4734-8221-5b31b5169bac')]) {",
    "MantleAPI_version=9a038989604e8da62ecddbe2094b16ce1b778be1",
    'author = "james.fake@ymail.com",',
    "token_count: 1543",
    "num_key_value_heads: 8, key_dim = 64",
    # keys that are not secrets
    'max_tokens: 4096, eos_token: "</s>", pad_token_id: 0',
    "tokenizer = AutoTokenizer.from_pretrained(model_id)",
    'public_key = "9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit"',
    "key_id: 555ea4a3-d53a-4412-9c66-3a7cb667b0d6",
    "secretName: app-decryption-secret",
    "PASSWORD_FILE=/run/secrets/db_password",
    "ssh_key: ~/.ssh/id_rsa",
    'nextPageToken: "CAoQAA8xYz"',
    'cache_key = f"user:{user_id}:profile"',
    "token_type: bearer",
    "PASSWORD_MIN_LENGTH=12",
    "password_reset_url: https://example.com/reset",
    'hashed_password = "$2b$12$KIXQJ8Z1v2e6sVq9GQm2Ae1Jx8o9bJc1h8q0p3Yb1c9mZ8k4e6b2a"',
    "- key: app.kubernetes.io/name",
    '"key": "Content-Type"',
    "--password-stdin",
    "echo $CI_TOKEN | docker login --password-stdin -u ci registry.example.com",
    "docker run -u 1000:1000 image",
    # look-alikes of token formats
    "the key finding is that sk-learn and desk-top-computer-monitor-stand work",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----",
    f"commit {HEX40} bumped version 1.2.3",
    f"sha256:{HEX64}",
    f"uuid {HEROKU_UUID} in request_id",
    "hf_hub_download(repo_id=repo, filename=fname)",
    "The sequence 1234567890:abcdefghijklmnopqrstuvwxyzabcdefghi is not a token",
    "ORDER-2024-000123 at 12:30:45 on 2024-01-15",
    "eyJhbGciOiJIUzI1NiJ9 is a base64 header, not a token",
    "AKIA is the prefix of AWS access key ids",
    "xo" + "xb-12345-abcd234",
    "xo" + "xb-abcdef-abcdef",
    "xoxe.xo" + "xp-1-RANDOMSTRINGHERE",
    "AI" + "zaSy" + "X" * 33,
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_near_miss_is_not_found(text):
    assert _values(text) == []


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def test_shannon_entropy():
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert shannon_entropy(B36) > 4.0


@pytest.mark.parametrize("value", ["q8TzV3nW1yK6rB0p", HEX32, "Zq8Rt2Lm", AWS_SECRET, "dXNlcjpwYXNz"])
def test_looks_random(value):
    assert looks_random(value)


@pytest.mark.parametrize(
    "value",
    [
        "short",
        "password",
        "changeme",
        "aaaaaaaaaaaa",
        "my_secret_value",
        "ThisIsMySecret",
        "12345678901",
        "abcdefghij1",
    ],
)
def test_does_not_look_random(value):
    assert not looks_random(value)


# ---------------------------------------------------------------------------------------
# A generated corpus: realistic records, planted values, near misses and filler
# ---------------------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


#: Token formats: (environment variable name, maker).
TOKEN_MAKERS = [
    ("AWS_ACCESS_KEY_ID", lambda r: r.choice(["AK", "AS"]) + "IA" + _r(r, string.ascii_uppercase + "234567", 16)),
    ("GITHUB_TOKEN", lambda r: "gh" + r.choice("pousr") + "_" + _r(r, ALNUM, 36)),
    ("GH_TOKEN", lambda r: "github" + "_pat_" + _r(r, ALNUM, 22) + "_" + _r(r, ALNUM, 59)),
    ("GITLAB_TOKEN", lambda r: "gl" + r.choice(["pat-", "dt-", "rt-"]) + _r(r, ALNUM + "_-", 20)),
    ("SLACK_BOT_TOKEN", lambda r: "xo" + f"x{r.choice('bpa')}-{r.randint(10**9, 10**12)}-" + _r(r, ALNUM, 24)),
    ("NPM_TOKEN", lambda r: "np" + "m_" + _r(r, ALNUM, 36)),
    ("PYPI_TOKEN", lambda r: "py" + "pi-AgEIcHlwaS5vcmc" + _r(r, ALNUM + "_-", 70)),
    ("HF_TOKEN", lambda r: "h" + "f_" + _r(r, string.ascii_letters, 34)),
    ("STRIPE_KEY", lambda r: r.choice(["sk", "rk"]) + r.choice(["_live_", "_test_"]) + _r(r, ALNUM, 24)),
    ("OPENAI_API_KEY", lambda r: "sk" + "-proj-" + _r(r, ALNUM + "_-", 48) + str(r.randint(0, 9))),
    ("ANTHROPIC_API_KEY", lambda r: "sk" + "-ant-api03-" + _r(r, ALNUM + "_-", 93) + "AA"),
    ("GOOGLE_API_KEY", lambda r: "AI" + "za" + _r(r, ALNUM + "_-", 35)),
    ("TWILIO_API_KEY", lambda r: "S" + "K" + _r(r, HEX, 32)),
    ("SENDGRID_API_KEY", lambda r: "S" + "G." + _r(r, ALNUM + "_-", 22) + "." + _r(r, ALNUM + "_-", 43)),
    ("MAILCHIMP_KEY", lambda r: _r(r, HEX, 32) + f"-us{r.randint(1, 21)}"),
    ("TELEGRAM_TOKEN", lambda r: f"{r.randint(10**8, 10**10)}:AA" + _r(r, ALNUM + "_-", 33)),
    ("DO_TOKEN", lambda r: "do" + "p_v1_" + _r(r, HEX, 64)),
    ("SHOPIFY_TOKEN", lambda r: "shp" + "at_" + _r(r, HEX, 32)),
    (
        "DISCORD_TOKEN",
        lambda r: (
            base64.b64encode(str(r.randint(10**17, 10**19)).encode()).decode().rstrip("=")
            + "."
            + _r(r, ALNUM, 6)
            + "."
            + _r(r, ALNUM + "_-", 27)
        ),
    ),
    (
        "JWT",
        lambda r: (
            _b64url({"alg": "HS256", "typ": "JWT"})
            + "."
            + _b64url({"sub": str(r.randint(1, 10**6)), "iat": r.randint(10**9, 2 * 10**9)})
            + "."
            + _r(r, ALNUM + "_-", 43)
        ),
    ),
]
PASSWORD_KEYS = [
    "DB_PASSWORD", "POSTGRES_PASSWORD", "MYSQL_ROOT_PASSWORD", "SMTP_PASS", "REDIS_PWD", "ADMIN_PASSWORD",
    "password", "db_password", "passwd", "admin_pass", "dbPassword", "spring.datasource.password",
]  # fmt: skip
TOKEN_KEYS = [
    "client_secret", "api_key", "apiKey", "SECRET_KEY", "auth_token", "access_token", "SESSION_SECRET",
    "JWT_SECRET", "WEBHOOK_SECRET", "encryption_key", "app_secret", "x-api-key", "private_key", "API_TOKEN",
]  # fmt: skip
WORDS = ["Summer", "Winter", "Tiger", "Falcon", "Maple", "Ocean", "Rocket", "Coffee", "Purple", "Dragon"]


def _password(r: random.Random) -> str:
    style = r.randrange(4)
    if style == 0:
        return r.choice(WORDS) + str(r.randint(1990, 2030)) + r.choice("!#$%?")
    if style == 1:
        return _r(r, ALNUM, r.randint(8, 16)) + r.choice(["", "!", "#", "9"])
    if style == 2:
        return r.choice(WORDS).lower() + str(r.randint(1, 99))
    return _r(r, ALNUM + "!#%*-_", r.randint(10, 20))


def _secret_value(r: random.Random) -> str:
    alphabet = r.choice([ALNUM, HEX, B64, ALNUM + "_-"])
    return _r(r, alphabet, r.choice([16, 24, 32, 40, 48]))


# A context frames a key and a value: (before, after); env keys are upper-cased where the format wants it.
def _frame(r: random.Random, key: str) -> tuple[str, str]:
    upper = key.upper().replace("-", "_").replace(".", "_")
    return r.choice(
        [
            (f"{upper}=", ""),
            (f"export {upper}=", ""),
            (f'{upper}="', '"'),
            (f"  {key}: ", ""),
            (f'  {key}: "', '"'),
            (f'{{"{key}": "', '", "region": "eu-west-1"}'),
            (f'{key} = "', '"'),
            (f"      - {upper}=", ""),
            (f"2024-05-01T12:00:03Z INFO config loaded {key}=", " pid=4411"),
            (f"{key} = '", "'  # TODO move to vault"),
        ]
    )


def _plant_token(r: random.Random) -> tuple[str, str, str]:
    name, make = r.choice(TOKEN_MAKERS)
    value = make(r)
    before, after = r.choice(
        [
            (f"{name}=", ""),
            (f'{name.lower()}: "', '"'),
            (f'{{"{name.lower()}": "', '"}'),
            ("Here is the token you asked for: ", " -- keep it out of git."),
            ("I accidentally committed ", " in the last push, can someone rotate it?"),
            ('curl -H "Authorization: Bearer ', '" https://api.example.com/v1/items'),
            ("2024-05-01 12:00:01 DEBUG using credential ", " for upload"),
            ("client = Client(token='", "')"),
        ]
    )
    return before, value, after


def _plant_assignment(r: random.Random) -> tuple[str, str, str]:
    if r.random() < 0.5:
        key, value = r.choice(PASSWORD_KEYS), _password(r)
    else:
        key, value = r.choice(TOKEN_KEYS), _secret_value(r)
    before, after = _frame(r, key)
    return before, value, after


def _plant_url(r: random.Random) -> tuple[str, str, str]:
    scheme = r.choice(["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp", "https", "ftp"])
    user = r.choice(["app", "svc_etl", "admin", "deploy", "reporting"])
    host = r.choice(["db.internal", "10.2.3.4", "cluster0.abcde.mongodb.net", "cache", "mq.prod.example.com"])
    before = r.choice(["DATABASE_URL=", "  url: ", 'engine = create_engine("', "connecting to "])
    after = r.choice(["", '")', " ...done", ""])
    return f"{before}{scheme}://{user}:", _password(r), f"@{host}:5432/app{after}"


def _plant_pem(r: random.Random) -> tuple[str, str, str]:
    kind = r.choice(["RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED "])
    body = "\n".join(_r(r, B64, 64) for _ in range(r.randint(2, 4)))
    block = f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"
    return r.choice(["", "deploy key:\n", "ssh_private_key: |\n"]), block, ""


def _plant_aws_secret(r: random.Random) -> tuple[str, str, str]:
    before, after = r.choice(
        [("AWS_SECRET_ACCESS_KEY=", ""), ("aws_secret_access_key = ", ""), ('"SecretAccessKey": "', '"')]
    )
    return before, _r(r, B64, 40), after


PLANTERS = [_plant_token] * 4 + [_plant_assignment] * 4 + [_plant_url] * 2 + [_plant_pem, _plant_aws_secret]


def _near_miss(r: random.Random) -> str:
    key = r.choice(PASSWORD_KEYS + TOKEN_KEYS)
    upper = key.upper().replace("-", "_").replace(".", "_")
    return r.choice(
        [
            f"{upper}=${{{upper}}}",
            f'{key}: "{{{{ vault_{key.lower().replace(".", "_")} }}}}"',
            f'{key} = "<your-{key.lower().replace("_", "-")}>"',
            f"{upper}=changeme",
            f'{key}: "********"',
            f"{key} = os.environ['{upper}']",
            f"{key} = process.env.{upper};",
            f"{key} = settings.{upper}",
            f"{key} = get_{key.split('.')[-1].lower()}()",
            f"conn = connect(host=host, {key.split('.')[-1]}={key.split('.')[-1]})",
            f"def login(user: str, {key.split('.')[-1].lower()}: str) -> bool:",
            f"{key}=None",
            f"{upper}=REDACTED",
            f"{upper}=xxxxxxxxxxxxxxxx",
            "git@github.com:acme/payments.git",
            "https://github.com/acme/payments/pull/42",
            "postgres://app:${DB_PASSWORD}@db:5432/app",
            "amqp://guest:guest@localhost:5672/",
            f"commit {_r(r, HEX, 40)} fixed the flaky test",
            f"image: registry.example.com/app@sha256:{_r(r, HEX, 64)}",
            f"request_id={_r(r, HEX, 8)}-{_r(r, HEX, 4)}-4{_r(r, HEX, 3)}-a{_r(r, HEX, 3)}-{_r(r, HEX, 12)}",
            f'"integrity": "sha512-{_r(r, B64, 86)}=="',
            "The password is stored hashed and never logged.",
            "Please rotate your API key after the incident.",
            "token: expires after one hour of inactivity",
            'max_new_tokens: 512\npad_token: "<pad>"\neos_token_id: 2',
            "aws_access_key_id = AK" + "IAIOSFODNN7EXAMPLE",
            "GITHUB_TOKEN=gh" + "p_" + "x" * 36,
            "export OPENAI_API_KEY=sk-...",
            f"key_id: {_r(r, HEX, 32)}",
            "PASSWORD_FILE=/run/secrets/db_password",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
        ]
    )


FILLER = [
    "INFO server started on port 8080",
    "replicas: 3",
    "timeout: 30s",
    "LOG_LEVEL=debug",
    "image: postgres:16-alpine",
    "The deployment finished in 42 seconds.",
    "See docs/setup.md for the full list of settings.",
    "retry_count = 5",
    "host: db.internal",
    "# staging settings below",
    "The team agreed to move the cron job to 02:00 UTC.",
    "def handler(event, context):\n    return {'status': 200}",
    "WARN cache miss ratio above 0.4 for 5m",
]


@dataclass
class Record:
    text: str
    spans: list[tuple[int, int]]


def make_corpus(n: int, seed: int) -> list[Record]:
    """``n`` records of about 300 characters; a third plant one or two secrets, most hold near misses."""
    r = random.Random(seed)
    records = []
    for _ in range(n):
        pieces: list[tuple[str, str, str] | str] = []
        if r.random() < 0.35:
            pieces += [r.choice(PLANTERS)(r) for _ in range(r.choice([1, 1, 2]))]
        pieces += [_near_miss(r) for _ in range(r.randint(0, 2))]
        while sum(len(p) if isinstance(p, str) else len("".join(p)) for p in pieces) < 240:
            pieces.append(r.choice(FILLER))
        r.shuffle(pieces)
        text, spans = "", []
        for piece in pieces:
            if text:
                text += "\n"
            if isinstance(piece, str):
                text += piece
                continue
            before, value, after = piece
            text += before
            spans.append((len(text), len(text) + len(value)))
            text += value + after
        records.append(Record(text, spans))
    return records


def score(records: list[Record], found: list[list[tuple[int, int]]]) -> dict[str, float]:
    """Recall (a planted value overlapped), exact recall (the very span) and precision."""
    planted = hit = exact = reported = correct = 0
    for record, spans in zip(records, found):
        planted += len(record.spans)
        for gold in record.spans:
            hit += any(s < gold[1] and gold[0] < e for s, e in spans)
            exact += gold in spans
        reported += len(spans)
        correct += sum(any(s < g[1] and g[0] < e for g in record.spans) for s, e in spans)
    return {
        "planted": planted,
        "recall": hit / planted,
        "exact": exact / planted,
        "precision": correct / reported if reported else 1.0,
    }


def test_generated_corpus_recall_and_precision():
    records = make_corpus(800, seed=7)
    stats = score(records, [[(f.start, f.end) for f in SCANNER.scan(rec.text)] for rec in records])
    assert stats["planted"] >= 300, stats
    assert stats["recall"] >= 0.97 and stats["exact"] >= 0.95, stats
    assert stats["precision"] >= 0.97, stats
