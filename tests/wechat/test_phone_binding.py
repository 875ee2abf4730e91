"""Mini program phone binding: WeChat's phone code, and the legacy encryptedData with the session key."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from app.wechat.fake import FakeWeChat
from tests.conftest import SAMPLE_APPID
from tests.factories.auth import operator_key, service_key, user_token
from tests.factories.identity import new_user
from tests.factories.wechat import BIND_PHONE, wechat_login
from tests.helpers import Gql

# The public WXBizDataCrypt sample (WeChat's docs; wechatpy's tests/test_crypto.py): user info, no phone.
SAMPLE_SESSION_KEY = "tiihtNczf5v6AKRyjwEUhQ=="
SAMPLE_IV = "r7BXXKkLb8qrSNn05n0qiA=="
SAMPLE_DATA = (
    "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4l"
    "GOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInN"
    "lxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/"
    "r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7Xjf"
    "hQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
)


@pytest.mark.parametrize("as_number", [False, True])
async def test_phone_code_binds_the_number_whatever_type_its_country_code_has(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat, as_number: bool
) -> None:
    fake_wechat.country_code_as_number = as_number
    session = await wechat_login(gql, "MINI_PROGRAM", "erin")
    user = (await gql(BIND_PHONE, {"wx": "13700137000"}, token=session["token"]))["bindPhone"]
    assert user["id"] == session["user"]["id"]
    phone = next(i for i in user["identities"] if i["kind"] == "PHONE")
    assert (phone["value"], phone["verified"]) == ("137****7000", True)
    assert phone["linkedBy"] == "verified: phone from getuserphonenumber"
    admin = await operator_key(app, "admin", "pii_reader")
    view = "query ($id: ID!) { user(id: $id) { phone } }"
    assert (await gql(view, {"id": user["id"]}, token=admin))["user"]["phone"] == "+8613700137000"


async def test_foreign_numbers_keep_their_country_code(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    session = await wechat_login(gql, "MINI_PROGRAM", "frank")
    await gql(BIND_PHONE, {"wx": "1-2025550123"}, token=session["token"])
    admin = await operator_key(app, "admin", "pii_reader")
    view = "query ($id: ID!) { user(id: $id) { phone } }"
    assert (await gql(view, {"id": session["user"]["id"]}, token=admin))["user"]["phone"] == "+12025550123"


async def test_a_used_phone_code_is_refused(gql: Gql, fake_wechat: FakeWeChat) -> None:
    session = await wechat_login(gql, "MINI_PROGRAM", "gina")
    await gql(BIND_PHONE, {"wx": "13700137001"}, token=session["token"])
    await gql.error(BIND_PHONE, {"wx": "13700137001"}, token=session["token"], code="WECHAT_CODE_INVALID")


async def test_legacy_encrypted_data_binds_with_the_stored_session_key(
    gql: Gql, fake_wechat: FakeWeChat
) -> None:
    session = await wechat_login(gql, "MINI_PROGRAM", "hank")
    mp = next(i["namespace"] for i in session["user"]["identities"] if i["kind"] == "OPENID")
    data, iv = fake_wechat.encrypt_for(
        mp,
        "hank",
        {
            "phoneNumber": "13600136000",
            "purePhoneNumber": "13600136000",
            "countryCode": "86",
            "watermark": {"appid": mp, "timestamp": 1},
        },  # fmt: skip
    )
    user = (await gql(BIND_PHONE, {"data": data, "iv": iv}, token=session["token"]))["bindPhone"]
    phone = next(i for i in user["identities"] if i["kind"] == "PHONE")
    assert (phone["value"], phone["linkedBy"]) == ("136****6000", "verified: phone from encryptedData")
    # Another mini program's data (watermark) is refused.
    data, iv = fake_wechat.encrypt_for(
        mp, "hank", {"purePhoneNumber": "13600136001", "countryCode": "86", "watermark": {"appid": "wxother"}}
    )
    await gql.error(
        BIND_PHONE, {"data": data, "iv": iv}, token=session["token"], code="WECHAT_DECRYPT_FAILED"
    )


async def test_the_public_sample_decrypts_with_its_session_key_and_holds_no_phone(
    settings: Settings, fake_wechat: FakeWeChat
) -> None:
    """The WXBizDataCrypt vector: the decrypt and its watermark check pass; the data is user info."""
    fake_wechat.preset_session_keys["sample"] = SAMPLE_SESSION_KEY
    sample_app = create_app(settings.model_copy(update={"mini_program_appid": SAMPLE_APPID}))
    try:
        transport = httpx.ASGITransport(app=sample_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://troika.test") as http:
            gql = Gql(http)
            session = await wechat_login(gql, "MINI_PROGRAM", "sample")
            error = await gql.error(
                BIND_PHONE,
                {"data": SAMPLE_DATA, "iv": SAMPLE_IV},
                token=session["token"],
                code="WECHAT_NO_PHONE",
            )
            assert "no phone number" in error["message"]
            # A wrong IV garbles the plaintext: refused, nothing bound.
            await gql.error(
                BIND_PHONE,
                {"data": SAMPLE_DATA, "iv": "AAAAAAAAAAAAAAAAAAAAAA=="},
                token=session["token"],
                code="WECHAT_DECRYPT_FAILED",
            )
    finally:
        await sample_app.state.db.dispose()


async def test_the_sample_is_refused_by_another_mini_program(gql: Gql, fake_wechat: FakeWeChat) -> None:
    fake_wechat.preset_session_keys["sample"] = SAMPLE_SESSION_KEY
    session = await wechat_login(gql, "MINI_PROGRAM", "sample")
    error = await gql.error(
        BIND_PHONE,
        {"data": SAMPLE_DATA, "iv": SAMPLE_IV},
        token=session["token"],
        code="WECHAT_DECRYPT_FAILED",
    )
    assert "watermark" in error["message"]


async def test_legacy_path_needs_a_mini_program_login(app: FastAPI, gql: Gql) -> None:
    admin = await operator_key(app, "admin")
    user_id = await new_user(gql, admin, phone="13800138000")
    await gql.error(
        BIND_PHONE,
        {"data": SAMPLE_DATA, "iv": SAMPLE_IV},
        token=user_token(app, user_id),
        code="WECHAT_SESSION_MISSING",
    )


async def test_one_proof_at_a_time_and_only_by_the_person(
    app: FastAPI, gql: Gql, fake_wechat: FakeWeChat
) -> None:
    session = await wechat_login(gql, "MINI_PROGRAM", "ivy")
    both = {"wx": "13700137002", "data": SAMPLE_DATA, "iv": SAMPLE_IV}
    await gql.error(BIND_PHONE, both, token=session["token"], code="BAD_USER_INPUT")
    await gql.error(BIND_PHONE, {}, token=session["token"], code="BAD_USER_INPUT")
    await gql.error(BIND_PHONE, {"sms": "123456"}, token=session["token"], code="BAD_USER_INPUT")
    service = await service_key(app, "MINI_PROGRAM")
    await gql.error(BIND_PHONE, {"wx": "13700137002"}, token=service, code="FORBIDDEN")
    await gql.error(BIND_PHONE, {"wx": "13700137002"}, token=None, code="UNAUTHENTICATED")
