//! Fixed test keys, generated once with `openssl genpkey` (RSA 2048, EC P-256, Ed25519, and
//! a P-384 public key for curve checks). Embedded so tests are deterministic and need no keygen.
//! These keys protect nothing: never use them outside tests.

/// RSA 2048 private key (PKCS#8).
pub const RSA_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCt68zpkivVIVu8\n\
DL4TVdSCzm7aAfzBev/uDUwi5JyTnEjqZjOWkMAscjOB7WjexNQcjqIHHq81KmBC\n\
5tVKkYUBsrZTyYFOcbYKdW7Ou0MFsQXJPpVfqcxNKKYwk4TdcWbGB0phxS3SAEnJ\n\
2FJ8yohgS6vmyvOd3JMR0JQLmar2GX7AtLzU1fhsHxdOIMNutwJOAX0Q1xegeXKa\n\
QEd+eTWYypROySDUKl61x6jys51udG4QtcLkeGiSB1dBrdbU/SpsMfQ4AIZCxo8h\n\
zjBI/z/GxT7NyvrqG89rfZHZUSbBCq3j8sbmxac//F+nbqyx81ZXQtB2QdRfJt0n\n\
jmbkJddzAgMBAAECggEAA++BDIwFN+ZwV/oF1xQrIeaf9Yjz+kDZR76/SU7ZCDIS\n\
KFO1uSN/ZcITzk3cAKZ9kkPcAMM9/br+wKTOkMhoNRihLZYyud6y2tu7bSwpoRhX\n\
ZC1pXefOurQ/xnugFw6436RMl5fJqKXfBZVCkJZYra0or6lKB/l0zoNkxjps9vKl\n\
MXBvUtMZqhE4HwkVIKjV96Ck4uQ0DGgG+xerumNzexIA+BFQHgqPsretsFM4L0O4\n\
8QbPwiR+J4v7RcDJtkBDNltfflLC88g3Wd3GWuAd2ognuxTIL1WKKnF1KBhk+wv2\n\
TpyxxyzYGWZiszji5gUmSz6PLz68/KbrFYm4NP8L8QKBgQDXO3Nh8o0aZoNKZ/GL\n\
JzHp76YY8Tu0bNDdWj3TE3Lk0h2iuDzlABuJ1EVAeZBg0irPWopap1w+Qd1EgsoK\n\
fVTfCqEDQn59EIp4y2T0R4zbYZsLo6I60Nc69p3VGWqsrykAti85MErF8jraNA89\n\
En5oZNUHDuj6v2ZGNbQRLbRIiQKBgQDO3S9FQuFhtFK/kC7YsNOHzZfkopzHY/rb\n\
fKkRJkot0PMFmZs4UJMbFyFS5Qr7RoKMzVf7JhuYnMkXG2fGSzuicuZqXY4+nZPB\n\
vO1s6xjY+fbirnj5Y7dJtrVXUw15/mKQmMo38RB/NjIN4/6S2qh9VCip2PJFnmM/\n\
ADbnoNJpGwKBgDK/FalWYuaCnRoB//VrPF2H34Wp+wXDUkueZ01JHKHO2KXxAoqL\n\
x/JrVhipkN0DMIzLMCvHofwb02u/2ps2ibg87VGzb9dU+xEYA6mE5TUkgkXwQuPT\n\
Mav5UaVY5MnqUqSUT/YP6NFbF30zIRSpM5yxiXisj0nvrtGG//m86PDhAoGBAIjc\n\
P20EbZa1tdV1b/j/LEP52pdymmU0mYBjPnvRKFydlFtNICum61yN9gcg8B4ErVS4\n\
eo/3y2Qxvr0h7Yt8tMyqVhVjJjv5BwuzkiVweTT8U8Hviqv8tAP59In8sbrXeaCO\n\
5aMTQ0XWtlEIWaIRNk4MwwZ0OP2kZ6cD3k9q0CqnAoGAF7tjhom2etnra9ZSZO2Z\n\
qJ3OVezkQ4YqMSiCKk30HadEJw9aQwy9kRdscs8VBPW0/QcZqxTrnemWq9i8nizd\n\
VrsmJ+FSlhsmdqMMOZHoPit/hQAYzvznTF8GkUQUauzES/71aFMpaqeO3hLbSiME\n\
mmyOe5MAvl7ZZxRz1hq4VDw=\n\
-----END PRIVATE KEY-----\n\
";

/// Public half of `RSA_PRIVATE_PEM` (SPKI).
pub const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArevM6ZIr1SFbvAy+E1XU\n\
gs5u2gH8wXr/7g1MIuSck5xI6mYzlpDALHIzge1o3sTUHI6iBx6vNSpgQubVSpGF\n\
AbK2U8mBTnG2CnVuzrtDBbEFyT6VX6nMTSimMJOE3XFmxgdKYcUt0gBJydhSfMqI\n\
YEur5srzndyTEdCUC5mq9hl+wLS81NX4bB8XTiDDbrcCTgF9ENcXoHlymkBHfnk1\n\
mMqUTskg1Cpetceo8rOdbnRuELXC5HhokgdXQa3W1P0qbDH0OACGQsaPIc4wSP8/\n\
xsU+zcr66hvPa32R2VEmwQqt4/LG5sWnP/xfp26ssfNWV0LQdkHUXybdJ45m5CXX\n\
cwIDAQAB\n\
-----END PUBLIC KEY-----\n\
";

/// EC P-256 private key (PKCS#8).
pub const EC_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgMC7ynAoKL6dPGNig\n\
Ia1gSV/RF8+mzDMjTm8A2jU1eOahRANCAARePnzNT/q4e+XbsVlJk8Aku9H6TkWf\n\
+9klyGuifoW5tgZ5/kSKnMmp2Z5ntPLIl17RiJoPqN4tnoHf4nKfbTsi\n\
-----END PRIVATE KEY-----\n\
";

/// Public half of `EC_PRIVATE_PEM` (SPKI).
pub const EC_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXj58zU/6uHvl27FZSZPAJLvR+k5F\n\
n/vZJchron6FubYGef5EipzJqdmeZ7TyyJde0YiaD6jeLZ6B3+Jyn207Ig==\n\
-----END PUBLIC KEY-----\n\
";

/// Ed25519 private key (PKCS#8).
pub const ED_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIFkjqsQ93fGpYBCxO9rsxsMTHL5cNgq1+SXGtF9SJkqE\n\
-----END PRIVATE KEY-----\n\
";

/// Public half of `ED_PRIVATE_PEM` (SPKI).
pub const ED_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MCowBQYDK2VwAyEAJHO7F4DAVXdqgi0aYhwOkEwdi9Bo3KWemKfpzV5f160=\n\
-----END PUBLIC KEY-----\n\
";

/// An EC P-384 public key: valid PEM, wrong curve for ES256.
pub const EC_P384_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEH6byEjmmjr8dNWF7Rgj2TIynm22ELMt0\n\
apsIYg5/u4rFUr6llyKxU/SbhEaBn0yQdCI+oHl8Rf5yBOIzPf4meQEah5u9PQpi\n\
/pXr5WyahSqsM3f4x+rqpgRgv3c8Si3Z\n\
-----END PUBLIC KEY-----\n\
";

/// `RSA_PUBLIC_PEM` as JWK members (no `kid`/`alg`: tests add them).
pub const RSA_JWK_N: &str = "revM6ZIr1SFbvAy-E1XUgs5u2gH8wXr_7g1MIuSck5xI6mYzlpDALHIzge1o3sTUHI6iBx6vNSpgQubVSpGFAbK2U8mBTnG2CnVuzrtDBbEFyT6VX6nMTSimMJOE3XFmxgdKYcUt0gBJydhSfMqIYEur5srzndyTEdCUC5mq9hl-wLS81NX4bB8XTiDDbrcCTgF9ENcXoHlymkBHfnk1mMqUTskg1Cpetceo8rOdbnRuELXC5HhokgdXQa3W1P0qbDH0OACGQsaPIc4wSP8_xsU-zcr66hvPa32R2VEmwQqt4_LG5sWnP_xfp26ssfNWV0LQdkHUXybdJ45m5CXXcw";
/// RSA public exponent, base64url.
pub const RSA_JWK_E: &str = "AQAB";
/// `EC_PUBLIC_PEM` x coordinate, base64url.
pub const EC_JWK_X: &str = "Xj58zU_6uHvl27FZSZPAJLvR-k5Fn_vZJchron6FubY";
/// `EC_PUBLIC_PEM` y coordinate, base64url.
pub const EC_JWK_Y: &str = "Bnn-RIqcyanZnme08siXXtGImg-o3i2egd_icp9tOyI";
/// `ED_PUBLIC_PEM` raw public key, base64url.
pub const ED_JWK_X: &str = "JHO7F4DAVXdqgi0aYhwOkEwdi9Bo3KWemKfpzV5f160";
