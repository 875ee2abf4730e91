"""WeChat: the API gateway (wechatpy), the official-account webhook and inbox, the development fake."""
