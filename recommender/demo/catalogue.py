"""Deterministic data for the demo shop: a bilingual catalogue, shoppers and their behaviour.

Everything here is plain Python (no Django) so that management commands, fixtures, benchmarks
and tests can all share it.  :func:`generate` builds

* 352 items in eight categories, with Chinese titles and descriptions on the item itself and
  faithful English translations in ``attributes`` (``title_en``/``description_en``).  Titles
  and descriptions are composed from per-category tables of product types, title modifiers
  (audience, style, material, feature...) and selling-point sentences, each written in both
  languages, so every Chinese phrase has a real English counterpart;
* 72 users, six per persona (budget student, new mother, tech enthusiast...), each persona
  with preferred categories, tags and a price range; a third of them shop in English;
* ~7,000-9,000 behaviours over the 60 days before ``now``: browsing sessions (view -> click -> cart
  -> purchase), likes and dislikes, ratings, free-text searches and reviews in the user's
  language.

The output depends only on ``seed`` and ``now``: the module never uses the global ``random``
state, nor the clock except for the default ``now``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

DEFAULT_SEED = 20261125
HISTORY_DAYS = 60
ITEMS_PER_CATEGORY = 44
USERS_PER_PERSONA = 6
INACTIVE_SHARE = 0.03
EXPLORATION_RATE = 0.28  # share of browsing outside the persona's categories
LOCAL_TZ = timezone(timedelta(hours=8))  # the demo shop runs on China Standard Time

BEHAVIOUR_KINDS = (
    "view",
    "click",
    "cart",
    "purchase",
    "rating",
    "like",
    "dislike",
    "search",
    "review",
    "share",
)

# --------------------------------------------------------------------------------------------
# Data tables
#
# One line per entry: a directive word at the start of the line, then its text.  Every Chinese
# sentence is followed by an indented line with its English translation.
#
#   category SLUG: 中文 = English       brands A, B, C       scene 中文。 / English.
#   type KEY: 中文名 = English Name      a product type (no name: titles are the modifiers only)
#   price LOW-HIGH                       in CNY
#   tags a, b, c                         always on the item; chosen modifiers are added
#   tag-slots 0 1                        which slots' modifiers become tags (default: all,
#                                        "-": none)
#   noun 中文 = english                  how reviews refer to it (default: the name)
#   title {0}{1}{n} {2} = {0} {1} {n}, {2}
#                                        title templates: {0}, {1}... modifiers, {n} the name
#                                        (default: modifiers then name, in the same order)
#   slot 女士 = Women's | 男士 = Men's | -
#       | ...                            one title modifier per slot, "-" is none (repeat it to
#                                        make it likelier); indented "|" lines continue a slot
#   note 保暖: 中文。 / English.          a description sentence used when that modifier is in
#   material 中文。 / English.           the description opens with one of these...
#   point 中文。 / English.              ...and continues with notes, points or a scene
#
#   persona SLUG: 中文 = English         categories SLUG WEIGHT, ...   tags ...   price LOW-HIGH
#   search CATEGORY | KEYWORDS | 中文查询 / english query
#                                        keywords are matched against Chinese titles and tags
#   opener|closer SENTIMENT: 中文 / English      review SLUG SENTIMENT: 中文 / English
#                                        sentiment is pos, mid or neg; {p} is the product noun
# --------------------------------------------------------------------------------------------

CLOTHING_TABLE = """
category clothing: 服装 = Clothing
brands Nordpeak, Yunshang, Urbanthread, Linmu, Morrow Lane, Beifeng
scene 适合通勤、出游和日常穿搭。
    Great for commuting, travel and everyday outfits.
scene 支持7天无理由退换，尺码不合适可换。
    Free returns within 7 days if the size isn't right.
scene 多种颜色与尺码可选，建议按平时尺码购买。
    Available in several colours and sizes; we recommend ordering your usual size.
scene 顺丰包邮，下单后24小时内发货。
    Free express shipping, dispatched within 24 hours.
scene 赠送运费险，退换无忧。
    Return-shipping insurance is included for worry-free exchanges.

type down_jacket: 羽绒服 = Down Jacket
price 399-1299
tags 羽绒服, down jacket, 冬季, 外套
slot 女士 = Women's | 男士 = Men's | 女性 = Women's
slot 加长款 = Long | 长款连帽 = Long Hooded | 过膝 = Knee-Length | 短款 = Cropped
    | 连帽 = Hooded | 立领 = Stand-Collar
slot 保暖 = Warm | 加厚 = Extra-Thick | 轻薄 = Lightweight | 防泼水 = Water-Repellent | -
note 保暖: 充绒量足，锁温效果好，零下十度也能轻松应对。
    Generously filled to lock in heat, it copes easily with -10°C.
note 加厚: 加厚设计，北方冬天穿也足够暖和。
    The extra-thick build keeps you warm even through northern winters.
note 轻薄: 整件仅重约400克，可收纳进随附的小袋里。
    At only about 400 g, it packs into the included pouch.
note 防泼水: 面料经过防泼水处理，雨雪天也不怕。
    A water-repellent finish shrugs off rain and snow.
material 采用90%白鸭绒填充，蓬松度高，轻盈不压身。
    Filled with 90% white duck down for high loft and a light, easy feel.
material 选用95%白鹅绒，蓬松度达700+。
    Made with 95% white goose down at 700+ fill power.
material 外层为高密度防风尼龙面料，内衬柔软亲肤。
    A high-density windproof nylon shell with a soft, skin-friendly lining.
point 帽子可拆卸，领口加高防风。
    The hood is detachable and the raised collar blocks wind.
point 双向拉链设计，坐下和走路都方便。
    A two-way zip makes sitting and walking easy.
point 袖口内置防风罗纹，防止冷风灌入。
    Ribbed inner cuffs stop cold air getting in.
point 面料防钻绒，可机洗。
    Down-proof fabric that is machine washable.

type jacket: 夹克外套 = Jacket
price 159-599
tags 夹克, 外套, jacket, 春秋
slot 高性价比 = Value-for-Money | - | -
slot 女士 = Women's | 男士 = Men's
slot 休闲 = Casual | 工装 = Utility | 立领 = Stand-Collar | 飞行员 = Bomber | 牛仔 = Denim
    | 连帽 = Hooded | 防风 = Windproof | -
note 高性价比: 用料扎实，做工质量好，价格却很实惠，性价比高。
    Solid materials and good build quality at a very reasonable price — great value for money.
material 面料为棉质混纺，挺括有型，耐磨耐穿。
    The cotton-blend fabric holds its shape and stands up to daily wear.
material 采用水洗纯棉斜纹布，越穿越有味道。
    Made from washed pure-cotton twill that only gets better with wear.
material 外层为防风涤纶面料，内里加一层薄棉。
    A windproof polyester shell with a light padded lining.
point 版型宽松不挑身材，春秋季单穿或叠穿都好看。
    The relaxed cut suits most builds and looks good alone or layered in spring and autumn.
point 多口袋实用设计，拉链顺滑。
    Plenty of practical pockets and smooth-running zips.
point 做工精细，走线整齐，质量好。
    Carefully made with neat stitching — good quality.

type trench_coat: 风衣 = Trench Coat
price 299-899
tags 风衣, 外套, trench coat, 春秋
slot 高性价比 = Value-for-Money | - | -
slot 女士 = Women's | 男士 = Men's
slot 双排扣 = Double-Breasted | 中长款 = Mid-Length | 英伦 = British-Style | 收腰 = Belted
    | 休闲 = Casual
note 高性价比: 用料扎实，做工质量好，价格却很实惠，性价比高。
    Solid materials and good build quality at a very reasonable price — great value for money.
material 采用棉涤混纺面料，垂感好、不易起皱。
    The cotton-polyester blend drapes well and resists creasing.
material 面料经过防泼水处理，小雨天也能从容应对。
    The fabric has a water-repellent finish that handles light rain.
point 经典翻领配腰带，通勤约会都合适。
    Classic lapels and a belt make it right for the office and for dates.
point 长度过臀，显高显瘦。
    A hip-covering length that lengthens your silhouette.
point 内衬顺滑，方便叠穿毛衣。
    A smooth lining makes it easy to wear over knitwear.

type wool_coat: 毛呢大衣 = Wool Coat
price 499-1599
tags 大衣, 外套, wool coat, 秋冬
slot 女士 = Women's | 男士 = Men's
slot 双面呢 = Double-Faced | 茧型 = Cocoon | 中长款 = Mid-Length | 翻领 = Notch-Lapel
    | 连帽 = Hooded
material 含羊毛70%，手感细腻，保暖又有质感。
    With 70% wool, it feels refined and keeps you warm in style.
material 双面呢工艺，不加内衬也很挺括。
    Double-faced construction keeps it structured without a lining.
point 落肩设计，里面穿毛衣也不显臃肿。
    Dropped shoulders leave room for a sweater without looking bulky.
point 简约百搭，正式和休闲场合都好看。
    Minimal and versatile, it suits both formal and casual occasions.

type sweater: 针织毛衣 = Knit Sweater
price 99-399
tags 毛衣, 针织, sweater, 秋冬
slot 女士 = Women's | 男士 = Men's
slot 圆领 = Crew-Neck | 高领 = Turtleneck | V领 = V-Neck | 麻花 = Cable | 宽松 = Oversized
slot 羊毛 = Wool | 羊绒 = Cashmere | 纯棉 = Cotton | -
material 纱线柔软细腻，贴身穿也不扎。
    The soft, fine yarn doesn't itch even on bare skin.
material 经过防起球处理，多次洗涤依然平整。
    Treated against pilling so it stays smooth wash after wash.
point 保暖性好，秋冬内搭外穿皆可。
    Warm enough to wear alone or layered all winter.
point 多色可选，百搭不挑人。
    Available in several colours that go with everything.

type hoodie: 卫衣 = Hoodie
price 89-299
tags 卫衣, hoodie, 休闲
slot 女士 = Women's | 男士 = Men's | 情侣 = Couples'
slot 加绒 = Fleece-Lined | 宽松 = Oversized | 拉链 = Zip-Up | 印花 = Graphic
slot 纯棉 = Cotton | -
material 采用380克重磅纯棉面料，厚实不变形。
    Made from heavyweight 380 gsm cotton that stays thick and holds its shape.
material 面料柔软亲肤，透气不闷热。
    Soft, skin-friendly fabric that breathes well.
point 罗纹袖口和下摆，回弹性好。
    Ribbed cuffs and hem spring back into shape.
point 学生党日常穿搭首选，价格亲民。
    A go-to everyday piece for students at a wallet-friendly price.

type jeans: 牛仔裤 = Jeans
price 99-399
tags 牛仔裤, jeans, 裤子
noun 牛仔裤 = pair of jeans
slot 女士 = Women's | 男士 = Men's
slot 直筒 = Straight-Leg | 阔腿 = Wide-Leg | 修身 = Slim-Fit | 高腰 = High-Waisted
    | 锥形 = Tapered
slot 弹力 = Stretch | 加绒 = Fleece-Lined | -
material 采用含2%氨纶的棉质牛仔布，弹性好、不勒腿。
    Cotton denim with 2% elastane gives comfortable stretch without pinching.
material 经过石磨水洗，颜色自然做旧。
    Stone-washed for a naturally worn-in colour.
point 显瘦显腿长，四季都能穿。
    Flattering and leg-lengthening, for every season.
point 走线结实，耐穿不易变形。
    Strong stitching means it lasts and keeps its shape.

type dress: 连衣裙 = Dress
price 129-599
tags 连衣裙, dress, 女装
slot 法式 = French-Style | 碎花 = Floral | 针织 = Knit | 衬衫式 = Shirt | 吊带 = Slip
slot 中长款 = Midi | 长款 = Maxi | 短款 = Mini
material 面料为垂感雪纺，轻盈飘逸。
    The flowing chiffon fabric is light and airy.
material 采用天丝混纺面料，透气凉爽。
    A Tencel-blend fabric keeps it breathable and cool.
point 收腰设计，修饰身材比例。
    A cinched waist flatters your proportions.
point 约会、度假、通勤都能穿。
    Works for dates, holidays and the office.

type shirt: 衬衫 = Shirt
price 89-329
tags 衬衫, shirt, 通勤
slot 女士 = Women's | 男士 = Men's
slot 商务 = Business | 休闲 = Casual | 牛津纺 = Oxford | 条纹 = Striped
slot 免烫 = Non-Iron | 长袖 = Long-Sleeve | 短袖 = Short-Sleeve
material 100%长绒棉面料，透气吸汗。
    100% long-staple cotton that breathes and wicks sweat.
material 采用液氨免烫工艺，洗后不易起皱。
    A liquid-ammonia non-iron finish keeps it crease-free after washing.
point 领型挺括，打不打领带都好看。
    The crisp collar looks sharp with or without a tie.
point 修身剪裁，上班通勤显精神。
    A tailored cut that looks smart at the office.
"""

ELECTRONICS_TABLE = """
category electronics: 数码电子 = Electronics
brands Voltrix, Kestrix, Sonara, Lumetra, Qingke, Arcbyte
scene 享受官方一年质保，全国联保。
    Backed by a one-year official nationwide warranty.
scene 支持以旧换新，顺丰包邮。
    Trade-in available, with free express shipping.
scene 适合学生、上班族日常使用。
    Suits students and office workers alike.
scene 支持7天无理由退货，15天质量问题换新。
    7-day no-questions-asked returns and a 15-day replacement for defects.
scene 官方旗舰店发货，正品行货可查。
    Shipped by the official flagship store, with a verifiable serial number.

type earbuds: 蓝牙耳机 = Bluetooth Earbuds
price 99-999
tags 耳机, 蓝牙, earbuds
noun 耳机 = pair of earbuds
slot 主动降噪 = Active Noise-Cancelling | 长续航 = Long-Battery-Life | 运动 = Sports
    | 游戏低延迟 = Low-Latency Gaming | 半入耳式 = Semi-In-Ear
slot 真无线 = True Wireless | 挂耳式 = Ear-Hook | -
note 主动降噪: 支持最高45dB主动降噪，地铁通勤也能安静听歌。
    Up to 45 dB of active noise cancelling keeps your commute quiet.
note 长续航: 单次续航8小时，配合充电盒总续航可达36小时。
    8 hours per charge and up to 36 hours in total with the case.
note 运动: IPX5级防水，跑步出汗也不怕。
    IPX5 water resistance means sweat is no problem on a run.
note 游戏低延迟: 游戏模式延迟低至60ms，音画同步。
    Game mode cuts latency to 60 ms so sound stays in sync.
material 采用12mm动圈单元，低音饱满，人声清晰。
    A 12 mm dynamic driver delivers full bass and clear vocals.
material 支持蓝牙5.3，连接稳定，开盖即连。
    Bluetooth 5.3 gives a stable link that pairs as soon as you open the case.
point 佩戴轻巧，单耳仅重4克。
    Light to wear at just 4 g per earbud.
point 支持Type-C快充，充电10分钟可听2小时。
    USB-C fast charging gives 2 hours of playback from a 10-minute charge.
point 双麦克风通话降噪，通话更清楚。
    Dual microphones cut background noise so calls sound clearer.

type keyboard: 机械键盘 = Mechanical Keyboard
price 149-799
tags 机械键盘, 键盘, keyboard, 外设
title {0}{1}{n}{2} = {0} {1} {n} {2}
slot 有线 = Wired | 无线三模 = Tri-Mode Wireless | 蓝牙双模 = Dual-Mode Bluetooth
slot 87键 = 87-Key | 104键 = 104-Key | 68键 = 68-Key | 电竞RGB = RGB Gaming
slot 青轴 = with Blue Switches | 红轴 = with Red Switches | 茶轴 = with Brown Switches
note 无线三模: 支持2.4G、蓝牙和有线三种连接，续航可达200小时。
    Connects by 2.4 GHz, Bluetooth or cable, with up to 200 hours of battery.
note 蓝牙双模: 蓝牙与有线双模切换，一键连接平板和电脑。
    Switches between Bluetooth and cable, pairing with a tablet or PC in one press.
note 青轴: 青轴段落感明显，敲击声清脆，打字爽快。
    Blue switches give a distinct tactile bump and a crisp click for satisfying typing.
note 红轴: 红轴线性顺滑、轻压即触发，适合游戏。
    Linear red switches are smooth and light — ideal for gaming.
note 茶轴: 茶轴手感介于青轴与红轴之间，安静不扰人。
    Brown switches sit between blue and red: tactile yet quiet.
material 采用PBT双色注塑键帽，长期使用不打油。
    Double-shot PBT keycaps resist shine even after years of use.
material 铝合金上盖，结构稳固，敲击无晃动。
    An aluminium top case keeps it solid, with no wobble.
point 支持全键热插拔，可自行更换轴体。
    Hot-swappable sockets let you change switches yourself.
point 全键无冲，游戏和编程都得心应手。
    Full N-key rollover handles gaming and coding with ease.

type laptop: 笔记本电脑 = Laptop
price 3299-9999
tags 笔记本电脑, 电脑, laptop
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 14英寸 = 14-Inch | 16英寸 = 16-Inch | 13.3英寸 = 13.3-Inch
slot 轻薄 = Thin and Light | 高性能游戏 = High-Performance Gaming | 商务办公 = Business
    | 学生 = Student
slot 16G+512G = 16 GB + 512 GB | 32G+1T = 32 GB + 1 TB | 16G+1T = 16 GB + 1 TB
note 轻薄: 机身厚度仅15.9mm，重约1.3kg，方便随身携带。
    Just 15.9 mm thick and about 1.3 kg, it is easy to carry anywhere.
note 高性能游戏: 搭载独立显卡与165Hz高刷屏，3A大作流畅运行。
    A dedicated GPU and a 165 Hz display run AAA games smoothly.
note 商务办公: 支持指纹解锁和硬件级数据加密，办公更安心。
    Fingerprint unlock and hardware data encryption keep work secure.
note 学生: 价格亲民，满足上网课、写论文等日常需求，性价比高。
    Affordable and ready for online classes and essays — great value.
material 全金属机身，做工扎实。
    An all-metal chassis with solid build quality.
material 2.5K高色准屏幕，100% sRGB色域，护眼不闪屏。
    A colour-accurate 2.5K display with 100% sRGB and flicker-free eye care.
point 续航可达12小时，出门不用带充电器。
    Up to 12 hours of battery, so leave the charger home.
point 接口丰富，支持雷电4和HDMI。
    Plenty of ports, including Thunderbolt 4 and HDMI.
point 双风扇散热，长时间运行依然安静。
    Dual fans keep it cool and quiet under sustained load.

type power_bank: 充电宝 = Power Bank
price 59-299
tags 充电宝, 移动电源, power bank
slot 10000毫安 = 10,000 mAh | 20000毫安 = 20,000 mAh
slot 22.5W快充 = 22.5 W Fast-Charging | 磁吸无线 = Magnetic Wireless | 超薄 = Ultra-Slim
    | 自带线 = Built-In Cable | 迷你 = Mini
material 采用高密度锂聚合物电芯，安全耐用。
    High-density lithium-polymer cells, safe and durable.
material 铝合金外壳，散热快、手感好。
    An aluminium shell sheds heat fast and feels good in hand.
point 可同时为两台设备充电。
    Charges two devices at once.
point 可带上飞机，出差旅行必备。
    Airline-friendly — a travel essential.
point 电量数显，剩余电量一目了然。
    A digital display shows exactly how much charge is left.

type smartwatch: 智能手表 = Smartwatch
price 299-2499
tags 智能手表, 手表, smartwatch, 穿戴
slot 运动 = Sports | 商务 = Business | 儿童 = Kids' | 户外 = Outdoor
slot 血氧心率监测 = Heart-Rate and SpO2 | GPS = GPS | eSIM通话 = eSIM Calling
    | 长续航 = Long-Battery-Life
material 1.43英寸AMOLED屏幕，阳光下也清晰可见。
    The 1.43-inch AMOLED screen stays readable in sunlight.
material 表壳为航空铝合金，搭配亲肤硅胶表带。
    An aerospace aluminium case with a skin-friendly silicone strap.
point 典型使用续航14天。
    Up to 14 days of battery life with typical use.
point 支持100多种运动模式和5ATM防水。
    Over 100 sports modes and 5 ATM water resistance.
point 睡眠监测准确，帮助改善作息。
    Accurate sleep tracking helps you improve your routine.

type monitor: 显示器 = Monitor
price 699-3499
tags 显示器, 屏幕, monitor
slot 27英寸 = 27-Inch | 24英寸 = 24-Inch | 32英寸 = 32-Inch | 34英寸带鱼屏 = 34-Inch Ultrawide
slot 4K = 4K | 2K 165Hz电竞 = 2K 165 Hz Gaming | IPS护眼 = IPS Eye-Care
    | Type-C办公 = USB-C Office
note 4K: 4K超高清分辨率，修图剪辑细节清晰。
    4K resolution shows every detail when editing photos and video.
note 2K 165Hz电竞: 165Hz高刷新率配合1ms响应，画面流畅不拖影。
    A 165 Hz refresh rate and 1 ms response keep motion smooth, no ghosting.
note IPS护眼: 低蓝光不闪屏，长时间使用眼睛不累。
    Low blue light and a flicker-free backlight ease eye strain.
note Type-C办公: 一根Type-C线即可传输画面并为笔记本供电65W。
    A single USB-C cable carries video and 65 W of laptop charging.
material 采用IPS面板，178°广视角，色彩还原准确。
    An IPS panel with 178° viewing angles and accurate colour.
material 窄边框设计，支架可升降旋转。
    Slim bezels and a stand that adjusts in height and swivel.
point 支持HDR400，明暗细节丰富。
    HDR400 brings out detail in highlights and shadows.
point 支持壁挂，桌面更整洁。
    VESA wall-mount support keeps your desk tidy.

type mouse: 鼠标 = Mouse
price 49-399
tags 鼠标, mouse, 外设
slot 无线静音 = Wireless Silent | 人体工学 = Ergonomic | 轻量化游戏 = Lightweight Gaming
    | 蓝牙双模 = Dual-Mode Bluetooth
slot 可充电 = Rechargeable | -
material 采用高精度光学传感器，最高支持26000DPI。
    A high-precision optical sensor goes up to 26,000 DPI.
material 表面类肤质涂层，握感舒适防滑。
    A soft-touch coating gives a comfortable, non-slip grip.
point 静音微动，深夜使用不吵人。
    Silent switches won't disturb anyone late at night.
point 一次充电可用两个月。
    One charge lasts around two months.

type tablet: 平板电脑 = Tablet
price 1499-5999
tags 平板电脑, 平板, tablet
slot 11英寸 = 11-Inch | 12.4英寸 = 12.4-Inch | 8.8英寸 = 8.8-Inch
slot 学习 = Study | 影音娱乐 = Entertainment | 办公 = Productivity | 护眼 = Eye-Care
material 2.5K高刷屏，看剧画面细腻流畅。
    A 2.5K high-refresh display makes videos sharp and smooth.
material 金属一体机身，厚度仅6.1mm。
    A unibody metal design just 6.1 mm thin.
point 支持手写笔与键盘，记笔记更方便。
    Works with a stylus and keyboard for easy note-taking.
point 四扬声器，沉浸式音效。
    Four speakers deliver immersive sound.
point 8000mAh大电池，续航持久。
    A large 8,000 mAh battery lasts all day.
"""

BOOKS_TABLE = """
category books: 图书 = Books
brands Qingyun Press, Beiyan Publishing, Xinghai Books, Mingjing Press, Linshu Editions
scene 正版图书，塑封发货。
    Genuine edition, shipped shrink-wrapped.
scene 适合自己阅读，也适合作为礼物送人。
    Great for your own shelf or as a gift.
scene 出版社直供，库存充足。
    Supplied directly by the publisher, with plenty in stock.
scene 满99元包邮，支持开具发票。
    Free shipping on orders over ¥99, with invoices available.
scene 随书附赠精美书签一枚。
    Comes with a bookmark.

type tech_book
price 49-139
tags 图书, 计算机, 编程, programming
tag-slots 0
noun 书 = book
slot Python编程 = Python Programming | 机器学习 = Machine Learning | 深度学习 = Deep Learning
    | 数据分析 = Data Analysis | 推荐系统 = Recommender Systems | Rust编程 = Rust Programming
    | 前端开发 = Front-End Development | 分布式系统 = Distributed Systems
slot 从入门到精通 = : From Beginner to Expert | 实战 = in Action
    | 核心原理与实践 = : Principles and Practice | 项目实战 = : Hands-On Projects
material 全书约500页，16开平装，纸张厚实。
    About 500 pages in a large-format paperback on thick paper.
material 全彩印刷，配有大量图示和案例代码。
    Printed in full colour with plenty of diagrams and sample code.
point 作者拥有十余年一线开发经验，讲解深入浅出。
    With over ten years of hands-on engineering, the author explains hard ideas in plain language.
point 每章附有练习题，配套代码可免费下载。
    Each chapter ends with exercises, and the companion code is a free download.
point 从基础概念讲到工程落地，适合初学者和进阶读者。
    It goes from basic concepts to production practice, for beginners and experienced readers alike.

type business_book
price 39-89
tags 图书, 经管, 职场, business
tag-slots 0
noun 书 = book
slot 个人理财 = Personal Finance | 价值投资 = Value Investing | 产品经理 = Product Management
    | 时间管理 = Time Management | 高效沟通 = Effective Communication | 创业 = Starting Up
slot 的底层逻辑 = : The Underlying Logic | 30讲 = : 30 Lessons | 入门 = : A Beginner's Guide
    | 实用手册 = : A Practical Handbook
material 精装版，附赠思维导图书签。
    A hardcover edition that comes with a mind-map bookmark.
material 平装版，轻便易携，通勤路上就能读。
    A light paperback that's easy to read on your commute.
point 结合大量真实案例，实用性强。
    Packed with real-world cases, it is highly practical.
point 语言通俗易懂，没有专业背景也能读懂。
    Written in plain language — no specialist background needed.
point 职场人士口碑推荐，多次加印。
    Recommended by professionals and reprinted many times.

type history_book
price 39-128
tags 图书, 历史, 人文, history
tag-slots 0
noun 书 = book
slot 宋朝 = The Song Dynasty | 丝绸之路 = The Silk Road | 敦煌 = Dunhuang | 唐诗 = Tang Poetry
    | 宋词 = Song Ci Poetry | 中国园林 = Chinese Gardens | 明清家具 = Ming and Qing Furniture
slot 简史 = : A Brief History | 十讲 = : Ten Lectures | 漫谈 = : Informal Essays
material 布面精装，附彩色插图一百余幅。
    Cloth-bound hardcover with more than a hundred colour illustrations.
material 平装本，排版疏朗，阅读舒适。
    A paperback with an airy layout that's easy to read.
point 作者为知名历史学者，考据严谨又不失趣味。
    Written by a well-known historian, rigorous yet entertaining.
point 以故事串联知识点，适合大众读者。
    Facts are woven into stories, making it accessible to general readers.

type life_book
price 29-88
tags 图书, 生活, lifestyle
tag-slots 0
noun 书 = book
slot 家常菜 = Home-Style Cooking | 烘焙 = Baking | 家庭收纳 = Home Organisation
    | 科学育儿 = Science-Based Parenting | 跑步 = Running | 力量训练 = Strength Training
    | 摄影 = Photography
slot 全书 = : The Complete Guide | 入门 = : A Beginner's Guide | 一本通 = : All in One
    | 图解 = : Illustrated
material 全彩印刷，步骤图清晰，一看就会。
    Full-colour step-by-step photos make everything easy to follow.
material 锁线装订，可平摊阅读，边看边操作。
    Thread-sewn binding lies flat so you can follow along hands-free.
point 收录200余个实用方法与技巧。
    Includes more than 200 practical methods and tips.
point 附赠视频教程，扫码即可观看。
    Comes with video tutorials you can open with a QR code.

type fiction
price 29-79
tags 图书, 小说, 文学, fiction
tag-slots -
noun 书 = book
slot 雾港的最后一班船 = The Last Ferry from Fog Harbour | 第七个证人 = The Seventh Witness
    | 星海拾光 = Gleaning Light from the Sea of Stars | 银河邮差 = The Galactic Postman
    | 南方的雪 = Snow in the South | 山城往事 = Tales of the Mountain City
    | 时间的褶皱 = The Folds of Time | 长夜将尽 = The Long Night Ends
    | 海边的旧书店 = The Old Bookshop by the Sea | 无人知晓的夏天 = The Summer No One Knew
slot （精装版） = (Hardcover) | （典藏版） = (Collector's Edition) | （平装版） = (Paperback)
    | -
note 雾港的最后一班船: 一部节奏紧凑的悬疑推理小说，结局反转令人意外。
    A tightly paced mystery whose twist ending catches you off guard.
note 第七个证人: 法庭推理小说，层层揭开一桩二十年前的旧案。
    A courtroom mystery that reopens a case from twenty years ago.
note 星海拾光: 硬科幻长篇，讲述人类第一次星际移民的故事。
    A hard SF novel about humanity's first interstellar migration.
note 银河邮差: 温暖治愈的科幻小说，讲述一位星际邮差的旅程。
    A warm, comforting science-fiction tale of an interstellar postman.
note 南方的雪: 细腻动人的家族小说，跨越三代人的悲欢离合。
    A moving family saga spanning three generations of joy and sorrow.
note 山城往事: 以重庆为背景的年代小说，烟火气十足。
    A period novel set in Chongqing, full of everyday street life.
note 时间的褶皱: 穿越时空的奇幻冒险小说，想象力丰富。
    A time-travelling fantasy adventure full of imagination.
note 长夜将尽: 民国背景的谍战小说，扣人心弦。
    A gripping spy thriller set in Republican-era China.
note 海边的旧书店: 温情短篇小说集，适合睡前慢慢读。
    A gentle short-story collection, perfect for slow bedtime reading.
note 无人知晓的夏天: 青春悬疑小说，关于友情与秘密。
    A coming-of-age mystery about friendship and secrets.
material 封面设计精美，附赠作者签名藏书票。
    A beautiful cover, with a bookplate signed by the author.
material 内文采用轻型纸印刷，拿在手里很轻。
    Printed on lightweight paper so it's easy to hold.
point 出版后连续多周登上畅销榜。
    It spent weeks on the bestseller lists after publication.
point 曾获多项文学奖提名，影视改编正在筹备中。
    Nominated for several literary awards, with a screen adaptation in the works.
"""

FOOD_TABLE = """
category food: 食品 = Food & Grocery
brands Shanlan Farm, Goldengrain, Greenridge, Yuanwei, Beeland, Chayuan
scene 下单后48小时内发货，日期新鲜。
    Ships within 48 hours with a fresh production date.
scene 适合家庭日常食用，也适合送礼。
    Great for everyday family meals or as a gift.
scene 原产地直发，新鲜看得见。
    Shipped straight from the source, so it arrives fresh.
scene 持有SC食品生产许可，吃得放心。
    Made under an SC food production licence, so you can eat with confidence.
scene 拆封后请密封保存，尽快食用。
    Once opened, keep it sealed and enjoy it soon.

type green_tea: 绿茶礼盒 = Green Tea Gift Box
price 128-598
tags 绿茶, 茶叶, 礼盒, 送礼, green tea
noun 绿茶 = green tea
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 有机 = Organic | 明前 = Pre-Qingming | 高山云雾 = High-Mountain Cloud-Mist
    | 特级 = Premium-Grade
slot 龙井 = Longjing | 碧螺春 = Biluochun | 信阳毛尖 = Xinyang Maojian | -
slot 250g = 250 g | 500g = 500 g | 2罐装 = 2 Tins
note 有机: 茶园通过有机认证，种植过程不使用化学农药。
    Grown in certified organic tea gardens without chemical pesticides.
note 明前: 采摘于清明前，一芽一叶，鲜嫩度高。
    Picked before the Qingming festival, one bud and one leaf, at its most tender.
material 茶汤清澈明亮，口感鲜爽回甘。
    The liquor is clear and bright, fresh on the palate with a sweet aftertaste.
material 手工炒制，豆香浓郁。
    Hand-roasted for a rich, chestnut-like aroma.
point 精美礼盒包装，送长辈、送客户都很体面。
    Elegant gift packaging makes it a fitting present for elders or clients.
point 独立小包装，方便携带和保存。
    Individually sealed sachets are easy to carry and store.

type coffee: 咖啡豆 = Coffee Beans
price 49-199
tags 咖啡豆, 咖啡, coffee
noun 咖啡豆 = bag of coffee beans
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 云南保山 = Yunnan Baoshan | 埃塞俄比亚耶加雪菲 = Ethiopian Yirgacheffe
    | 哥伦比亚 = Colombian | 巴西 = Brazilian
slot 中深烘 = Medium-Dark Roast | 浅烘 = Light Roast | 意式拼配 = Espresso Blend
slot 454g = 454 g | 250g = 250 g
note 中深烘: 中深烘焙，风味带有坚果与焦糖香，口感醇厚。
    A medium-dark roast with notes of nuts and caramel and a full body.
note 浅烘: 浅度烘焙保留明亮酸质，带有柑橘和花香。
    A light roast that keeps a bright acidity with citrus and floral notes.
note 意式拼配: 拼配比例反复调试，做拿铁奶香融合度高。
    A carefully tuned blend that pairs beautifully with milk in a latte.
material 当季新豆，下单后现烘现发。
    This season's crop, roasted to order and shipped fresh.
material 采用单向排气阀包装袋，锁住香气。
    Packed in a one-way valve bag to lock in the aroma.
point 适合手冲、法压和冷萃。
    Suits pour-over, French press and cold brew.
point 可免费代磨，请备注研磨粗细。
    Free grinding available — just note your grind size.

type nuts: 每日坚果 = Daily Mixed Nuts
price 39-169
tags 坚果, 零食, snacks, nuts
noun 坚果 = bag of mixed nuts
title {0}{n} {1} = {0} {n}, {1}
slot 原味 = Original | 低盐 = Lightly Salted | 无添加 = No-Additive | 儿童 = Kids'
slot 30袋装 = 30 Packs | 15袋装 = 15 Packs | 礼盒装 = Gift Box
material 每袋含腰果、巴旦木、核桃、蔓越莓等6种坚果果干。
    Each pack mixes six nuts and dried fruits, including cashews, almonds, walnuts and cranberries.
material 采用充氮锁鲜包装，坚果酥脆不受潮。
    Nitrogen-flushed packs keep the nuts crisp and dry.
point 每日一袋，补充优质脂肪和蛋白质。
    One pack a day adds healthy fats and protein.
point 独立小袋，办公室、宿舍随手吃。
    Individual packs are handy for the office or dorm.
point 口感香脆，不腻口。
    Crunchy and satisfying without being greasy.

type jerky: 牛肉干 = Beef Jerky
price 39-159
tags 牛肉干, 零食, 高蛋白, jerky
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 内蒙古 = Inner Mongolian | -
slot 五香 = Five-Spice | 麻辣 = Spicy Sichuan | 风干 = Air-Dried | 原切 = Hand-Cut
slot 250g = 250 g | 500g = 500 g
material 选用草原黄牛后腿肉，肉质紧实。
    Made from grass-fed beef hind leg for a firm, meaty bite.
material 传统工艺风干，无淀粉添加。
    Air-dried the traditional way with no added starch.
point 高蛋白低脂肪，健身人士的解馋零食。
    High in protein and low in fat — a guilt-free treat for gym-goers.
point 越嚼越香，追剧必备。
    The flavour builds as you chew — perfect for binge-watching.

type rice: 大米 = Rice
price 39-129
tags 大米, 粮油, rice
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 五常 = Wuchang | 东北 = Northeastern | 盘锦蟹田 = Panjin Crab-Paddy
slot 稻花香 = Daohuaxiang | 长粒香 = Long-Grain | -
slot 5kg = 5 kg | 10kg = 10 kg
material 当季新米，颗粒饱满，晶莹剔透。
    This season's harvest, with plump, translucent grains.
material 真空包装，防潮防虫。
    Vacuum-packed against moisture and pests.
point 蒸出的米饭软糯香甜，口感好。
    It cooks up soft, fragrant and slightly sweet.
point 一年一季，生长周期长，营养积累充分。
    One harvest a year and a long growing season give the grains time to build up nutrients.

type honey: 蜂蜜 = Honey
price 39-199
tags 蜂蜜, honey, 冲饮
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 天然成熟 = Natural Mature | 纯正 = Pure | 农家 = Farmhouse
slot 洋槐 = Acacia | 百花 = Wildflower | 枣花 = Jujube Blossom | 椴树 = Linden
slot 500g = 500 g | 1kg = 1 kg
material 蜂农自产自销，无添加糖浆。
    Sold directly by the beekeepers, with no added syrup.
material 玻璃瓶装，密封性好。
    Sealed in a glass jar for freshness.
point 口感清甜不腻，冲水、抹面包都好吃。
    Sweet without being cloying — lovely in warm water or on toast.
point 低温过滤，保留天然营养成分。
    Filtered at low temperature to keep its natural nutrients.

type protein: 乳清蛋白粉 = Whey Protein Powder
price 199-499
tags 蛋白粉, 健身, 增肌, protein
noun 蛋白粉 = protein powder
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 香草味 = Vanilla | 巧克力味 = Chocolate | 原味 = Unflavoured | 草莓味 = Strawberry
slot 分离 = Isolate | 增肌 = Mass-Gain | -
slot 2磅 = 2 lb | 5磅 = 5 lb
material 每份含25克蛋白质，低脂低糖。
    Each serving delivers 25 g of protein with little fat or sugar.
material 速溶配方，摇一摇就能溶解，不结块。
    Dissolves with a quick shake, with no clumps.
point 训练后半小时内饮用，帮助肌肉恢复。
    Drink within 30 minutes of training to help muscles recover.
point 口感顺滑，不齁甜。
    Smooth and not overly sweet.

type instant
price 29-89
tags 速食, 宵夜, 方便, instant food
noun 速食 = instant meal
title {0} {1} = {0}, {1}
slot 柳州螺蛳粉 = Liuzhou River Snail Rice Noodles | 麻辣自热小火锅 = Spicy Self-Heating Hot Pot
    | 酸辣粉 = Hot and Sour Glass Noodles | 重庆小面 = Chongqing Noodles
slot 5袋装 = 5 Packs | 10袋装 = 10 Packs | 整箱装 = Full Case
material 配料包丰富，料足味正。
    Generous seasoning packs for an authentic, full flavour.
material 非油炸面饼，口感筋道。
    Non-fried noodles with a pleasantly chewy bite.
point 几分钟即可出餐，宿舍加班都方便。
    Ready in minutes — handy in the dorm or on late nights.
point 价格实惠，性价比高。
    Affordable and great value for money.

type soy_sauce: 生抽酱油 = Light Soy Sauce
price 19-69
tags 酱油, 调味品, 厨房, soy sauce
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 零添加 = Additive-Free | 头道 = First-Extract | 有机 = Organic
slot 酿造 = Naturally Brewed | -
slot 1.8L = 1.8 L | 500ml = 500 ml
material 选用非转基因黄豆，古法晒制180天。
    Made from non-GMO soybeans, sun-brewed for 180 days the traditional way.
material 氨基酸态氮≥1.2g/100ml，达到特级标准。
    Amino-acid nitrogen of at least 1.2 g/100 ml meets the premium grade.
point 咸鲜适口，凉拌、炒菜都好用。
    Savoury and balanced for cold dishes and stir-fries.
point 不添加防腐剂和味精。
    No preservatives or MSG.

type olive_oil: 橄榄油 = Olive Oil
price 69-259
tags 橄榄油, 食用油, 厨房, olive oil
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 西班牙 = Spanish | 希腊 = Greek | 意大利 = Italian
slot 特级初榨 = Extra Virgin | 低温冷榨 = Cold-Pressed
slot 750ml = 750 ml | 1L = 1 L
material 原装进口，酸度≤0.3%。
    Imported in the original bottle, with acidity of 0.3% or less.
material 深色玻璃瓶避光保存。
    A dark glass bottle protects it from light.
point 果香浓郁，适合凉拌和低温烹饪。
    Rich and fruity, ideal for dressings and gentle cooking.
point 富含单不饱和脂肪酸，健康之选。
    Rich in monounsaturated fats — a healthy choice.
"""

HOME_TABLE = """
category home: 家居 = Home & Living
brands Mujia Home, Nestory, Qingju, Ironleaf, Softnest, Lumihome
scene 支持30天无忧退换。
    Hassle-free returns within 30 days.
scene 提升家居生活品质的好物。
    A small upgrade that makes everyday home life better.
scene 风格百搭，送礼自用两相宜。
    Fits any decor and works as a gift or for yourself.
scene 全国联保，售后无忧。
    Nationwide warranty for worry-free after-sales service.
scene 包装加厚防震，运输不易损坏。
    Thickly padded packaging keeps it safe in transit.

type pillow: 枕头 = Pillow
price 59-399
tags 枕头, 床品, 睡眠, pillow
slot 护颈 = Neck-Support | 单人 = Single | 助眠 = Sleep-Aid | -
slot 乳胶 = Latex | 记忆棉 = Memory Foam | 荞麦 = Buckwheat | 羽绒 = Down
material 枕芯透气回弹好，不易塌陷。
    The filling breathes well and springs back without sagging.
material 外套为60支全棉，可拆洗。
    The 60s cotton cover is removable and washable.
point 人体工学曲线设计，贴合颈椎，减轻落枕。
    An ergonomic contour supports your neck and helps prevent stiffness.
point 适合仰睡和侧睡。
    Suits both back and side sleepers.

type bedding: 四件套 = 4-Piece Bedding Set
price 159-899
tags 四件套, 床品, bedding
slot 简约纯色 = Minimalist Solid-Colour | 北欧格纹 = Nordic Check | 碎花 = Floral
slot 全棉 = Cotton | 长绒棉 = Long-Staple Cotton | 天丝 = Tencel | 水洗真丝 = Washed Silk
    | 加厚牛奶绒 = Thick Milk-Velvet
material 采用活性印染工艺，不易褪色。
    Reactive dyeing keeps the colours from fading.
material 面料柔软亲肤，越洗越舒服。
    Soft on the skin and cosier with every wash.
point 包含被套、床单和两个枕套，适用1.5-1.8米床。
    Includes a duvet cover, a sheet and two pillowcases for 1.5–1.8 m beds.
point A类面料，婴幼儿也可放心使用。
    Class A fabric, safe even for babies and toddlers.

type wok: 炒锅 = Wok
price 99-599
tags 炒锅, 锅具, 厨房, wok
title {0}{n} {1} {2} = {0} {1} {n}, {2}
slot 不粘 = Non-Stick | 铸铁 = Cast-Iron | 精铁 = Carbon-Steel | 316不锈钢 = 316 Stainless Steel
slot 少油烟 = Low-Smoke | 电磁炉通用 = Induction-Ready | -
slot 32cm = 32 cm | 30cm = 30 cm
material 锅体采用多层复合结构，受热均匀。
    A multi-layer body heats evenly.
material 木质手柄防烫，握感舒适。
    A wooden handle stays cool and feels comfortable.
point 燃气灶、电磁炉通用。
    Works on gas and induction hobs.
point 锅身轻便，单手颠锅不费力。
    Light enough to toss food one-handed.
point 易清洗，一冲即净。
    Easy to clean with just a rinse.

type tumbler: 保温杯 = Insulated Tumbler
price 49-259
tags 保温杯, 水杯, tumbler
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 大容量 = Large-Capacity | 便携 = Portable | 带茶隔 = Tea-Infuser
slot 316不锈钢 = 316 Stainless Steel | 钛 = Titanium
slot 500ml = 500 ml | 1L = 1 L | 350ml = 350 ml
material 双层真空设计，保温12小时以上。
    Double-wall vacuum insulation keeps drinks hot for more than 12 hours.
material 杯盖采用食品级硅胶密封圈，不漏水。
    A food-grade silicone seal in the lid stops leaks.
point 杯身轻巧，可放进包里随身带。
    Light enough to slip into your bag.
point 内壁光滑，不留异味，好清洗。
    The smooth inner wall resists odours and cleans easily.

type desk_lamp: 台灯 = Desk Lamp
price 79-499
tags 台灯, 灯具, 阅读, lamp
slot 国AA级 = Class AA | 可调光 = Dimmable | 充电 = Rechargeable | -
slot 护眼 = Eye-Care | LED = LED | 阅读 = Reading | 学生 = Student
material 全光谱LED光源，显色指数Ra≥97。
    A full-spectrum LED with a colour rendering index of Ra 97 or higher.
material 铝合金灯臂，可多角度调节。
    The aluminium arm adjusts to many angles.
point 无频闪无蓝光危害，长时间读书写字不累眼。
    Flicker-free with no blue-light hazard, so long reading sessions are easier on the eyes.
point 四档色温、无极调光。
    Four colour temperatures and stepless dimming.

type purifier: 空气净化器 = Air Purifier
price 499-2499
tags 空气净化器, 家电, air purifier
slot 除甲醛 = Formaldehyde-Removing | 宠物家庭 = Pet-Friendly | 母婴 = Nursery
    | 除菌 = Antibacterial
slot 静音 = Quiet | 智能 = Smart | -
material H13级HEPA滤网，可过滤99.97%的PM2.5。
    An H13 HEPA filter captures 99.97% of PM2.5.
material CADR值达500m³/h，适用面积35-60平方米。
    A CADR of 500 m³/h covers rooms of 35–60 m².
point 睡眠模式低至28分贝。
    Sleep mode runs as quietly as 28 dB.
point 支持手机App远程控制，实时显示空气质量。
    Control it from the app and see live air-quality readings.

type towel: 毛巾 = Towels
price 39-159
tags 毛巾, 浴室, towel
noun 毛巾 = set of towels
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 加厚 = Thick | A类 = Class A | 速干 = Quick-Dry
slot 纯棉 = Cotton | 长绒棉 = Long-Staple Cotton | 竹纤维 = Bamboo-Fibre
slot 3条装 = 3-Pack | 2条装 = 2-Pack
material 毛圈密实，吸水性好，不掉毛。
    Dense loops absorb water well and don't shed.
material 采用无捻纱工艺，蓬松柔软。
    Zero-twist yarn makes them fluffy and soft.
point 柔软亲肤，宝宝也能用。
    Soft enough for a baby's skin.
point 不含荧光剂，洗后不发硬。
    Free of optical brighteners and soft after washing.

type rice_cooker: 电饭煲 = Rice Cooker
price 199-899
tags 电饭煲, 厨房电器, rice cooker
title {0}{n} {1} = {0} {n}, {1}
slot 智能 = Smart | IH电磁加热 = IH Induction | 低糖 = Low-Sugar | 迷你 = Mini
slot 3L = 3 L | 4L = 4 L | 5L = 5 L
material 内胆为不粘涂层合金，煮饭不糊底。
    A non-stick alloy inner pot stops rice catching.
material 微电脑控制，多段温控。
    Microcomputer control with multi-stage heating.
point 支持预约和24小时保温。
    Delay start and 24-hour keep-warm.
point 可煮饭、煲汤、熬粥、蒸蛋。
    Cooks rice, soup, congee and steamed eggs.

type knife_set: 厨房刀具套装 = Kitchen Knife Set
price 99-699
tags 刀具, 厨房, knives
title {0}{n} {1} = {1} {0} {n}
slot 德国不锈钢 = German Stainless Steel | 大马士革钢 = Damascus Steel
    | 高碳钢 = High-Carbon Steel
slot 5件套 = 5-Piece | 7件套 = 7-Piece | -
material 刀身经过真空热处理，硬度达58HRC，锋利耐用。
    Vacuum heat-treated blades reach 58 HRC for a sharp, lasting edge.
material 一体成型刀柄，防滑防霉。
    Seamless handles are non-slip and mould-resistant.
point 包含菜刀、水果刀、剪刀等，附实木刀座。
    Includes a cleaver, fruit knife and scissors, with a solid-wood block.
point 切肉切菜都很顺手。
    Handles meat and vegetables with ease.

type candle: 香薰蜡烛 = Scented Candle
price 59-299
tags 香薰, 蜡烛, 礼物, candle
title {0}{n} {1} = {0} {n}, {1}
slot 雪松 = Cedarwood | 白茶 = White Tea | 无花果 = Fig | 玫瑰 = Rose | 柑橘 = Citrus
slot 礼盒装 = Gift Set | -
material 采用天然大豆蜡和棉芯，燃烧无黑烟。
    Natural soy wax and a cotton wick burn cleanly with no black smoke.
material 香精来自法国格拉斯，香气层次丰富。
    Fragrance oils from Grasse, France, give a layered scent.
point 可燃烧约40小时。
    Burns for about 40 hours.
point 客厅、卧室、浴室都适用，营造放松氛围。
    Creates a relaxing mood in the living room, bedroom or bathroom.
"""

BEAUTY_TABLE = """
category beauty: 美妆个护 = Beauty & Personal Care
brands Aurelle, Yuyan, Purefolia, Hanshui, Lumiskin, Mistral Lab
scene 品牌官方授权，正品保证。
    Officially authorised by the brand — guaranteed authentic.
scene 建议首次使用前先在耳后做过敏测试。
    We recommend a patch test behind the ear before first use.
scene 下单即赠同系列旅行装小样。
    Every order comes with travel-size samples from the same range.
scene 专柜同款，支持扫码验真。
    The same product as in department stores, with a QR code to check it's genuine.
scene 保质期3年，开封后请在12个月内用完。
    Shelf life of 3 years; use within 12 months of opening.

type face_cream: 面霜 = Face Cream
price 89-599
tags 面霜, 护肤, face cream
slot 敏感肌 = Sensitive-Skin | 男士 = Men's | -
slot 保湿 = Moisturising | 修护 = Repairing | 抗皱紧致 = Anti-Wrinkle Firming
    | 美白淡斑 = Brightening
material 含5%烟酰胺和神经酰胺，修护皮肤屏障。
    With 5% niacinamide and ceramides to repair the skin barrier.
material 添加玻尿酸和积雪草精华，温和补水。
    Hyaluronic acid and centella extract hydrate gently.
material 质地轻盈，好推开易吸收，不油腻。
    A light texture that spreads easily and absorbs without greasiness.
point 无酒精无香精，经过敏感肌测试。
    Alcohol-free and fragrance-free, tested on sensitive skin.
point 早晚可用，长效保湿24小时。
    Use morning and night for 24-hour hydration.

type serum: 精华液 = Serum
price 129-899
tags 精华, 护肤, serum
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 玻尿酸 = Hyaluronic Acid | 视黄醇 = Retinol | 维C = Vitamin C | 二裂酵母 = Bifida Ferment
slot 补水 = Hydrating | 抗老 = Anti-Ageing | 提亮 = Brightening | 舒缓 = Soothing
slot 30ml = 30 ml | 50ml = 50 ml
note 视黄醇: 含0.1%视黄醇，建议晚间使用并做好防晒。
    Contains 0.1% retinol; use at night and wear sunscreen by day.
note 维C: 高浓度维C衍生物，提亮肤色，改善暗沉。
    A high dose of vitamin C derivatives brightens a dull complexion.
material 质地清爽水润，上脸秒吸收。
    A light, watery texture that sinks in instantly.
material 滴管瓶设计，用量精准，避光保存。
    A dropper bottle for precise dosing that blocks light.
point 坚持使用28天，肌肤更加水润透亮。
    After 28 days of use, skin looks more hydrated and radiant.
point 可搭配面霜使用，效果更好。
    Works even better paired with a moisturiser.

type sunscreen: 防晒霜 = Sunscreen
price 59-259
tags 防晒, 护肤, sunscreen
title {0}{1}{n} {2} = {0} {1} {n} {2}
slot 清爽 = Lightweight | 水润 = Dewy | 户外防水 = Water-Resistant Outdoor | 物理 = Mineral
    | 儿童 = Kids'
slot 面部 = Face | 全身 = Face and Body
slot SPF50+ PA++++ = SPF50+ PA++++ | SPF30 = SPF30
note 户外防水: 防水防汗，户外运动也不易脱落。
    Water- and sweat-resistant, so it stays put during outdoor sports.
material 采用新一代防晒剂，广谱防护UVA和UVB。
    New-generation filters give broad-spectrum UVA and UVB protection.
material 质地轻薄不泛白，可作妆前乳。
    Light, with no white cast; doubles as a primer.
point 温和配方，洗面奶即可卸除。
    A gentle formula that washes off with ordinary cleanser.
point 小巧瓶身，方便随身补涂。
    A compact bottle that's easy to carry for top-ups.

type lipstick: 口红 = Lipstick
price 99-399
tags 口红, 彩妆, lipstick
title {0}{n} {1} {2} = {0} {n} in {1}, {2}
slot 丝绒哑光 = Velvet Matte | 滋润 = Moisturising | 水光 = Glossy
slot 正红色 = Classic Red | 豆沙色 = Rosewood | 枫叶红 = Maple Red | 奶茶色 = Milk-Tea Nude
slot 礼盒装 = Gift Set | -
material 添加植物油脂，滋润不拔干。
    Enriched with plant oils so it never dries your lips.
material 高显色度，一抹饱满。
    Highly pigmented for full colour in one swipe.
point 持久不易沾杯。
    Long-lasting and transfer-resistant.
point 黄皮也显白，日常通勤都好驾驭。
    Flatters warm skin tones and is easy to wear every day.

type shampoo: 洗发水 = Shampoo
price 39-159
tags 洗发水, 洗护, shampoo
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 氨基酸 = Amino-Acid | 无硅油 = Silicone-Free | -
slot 控油蓬松 = Oil-Control Volumising | 去屑止痒 = Anti-Dandruff | 柔顺修护 = Smoothing Repair
    | 防脱固发 = Anti-Hair-Loss
slot 500ml = 500 ml | 750ml = 750 ml
note 控油蓬松: 适合油性头皮，洗后一整天都清爽蓬松。
    Made for oily scalps, it keeps hair fresh and full all day.
note 去屑止痒: 含吡罗克酮乙醇胺盐，有效去屑止痒。
    Piroctone olamine fights dandruff and itching.
material 温和氨基酸表活，泡沫细腻，不刺激头皮。
    Gentle amino-acid cleansers make a fine lather that won't irritate the scalp.
material 添加生姜与侧柏叶精华。
    Enriched with ginger and Chinese arborvitae extracts.
point 洗后持续留香。
    Leaves a lasting fresh scent.
point 按压泵头设计，家庭装更划算。
    A pump bottle in a family size that's better value.

type cleanser: 洗面奶 = Facial Cleanser
price 49-199
tags 洗面奶, 洁面, cleanser
slot 男士 = Men's | 女士 = Women's | -
slot 氨基酸 = Amino-Acid | 泡沫 = Foaming | -
slot 温和 = Gentle | 控油 = Oil-Control | 深层清洁 = Deep-Cleansing
material 弱酸性配方，洗后不紧绷。
    A mildly acidic formula that leaves skin comfortable, not tight.
material 绵密泡沫，轻松带走油脂和污垢。
    A rich foam lifts away oil and grime.
point 敏感肌也可日常使用。
    Gentle enough for daily use on sensitive skin.
point 一支可用约两个月，性价比高。
    One tube lasts about two months — great value.

type toothbrush: 电动牙刷 = Electric Toothbrush
price 99-699
tags 电动牙刷, 口腔护理, toothbrush
slot 声波 = Sonic | 磁悬浮 = Maglev | 便携 = Travel
slot 长续航 = Long-Battery-Life | 美白 = Whitening | 敏感护龈 = Gum-Care
material 每分钟振动3.8万次，清洁力强。
    38,000 vibrations a minute for powerful cleaning.
material 软毛刷头，末端磨圆，不伤牙龈。
    Soft bristles with rounded tips are kind to gums.
point 充电一次可用60天。
    One charge lasts 60 days.
point 5种清洁模式，2分钟智能定时。
    Five cleaning modes and a 2-minute smart timer.
point IPX7级防水，可整机水洗。
    IPX7 waterproof, so the whole brush can be rinsed.

type sheet_mask: 面膜 = Sheet Masks
price 49-199
tags 面膜, 护肤, sheet mask
noun 面膜 = box of sheet masks
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 补水 = Hydrating | 舒缓修护 = Soothing Repair | 亮肤 = Brightening
slot 蚕丝 = Silk | 生物纤维 = Bio-Cellulose | -
slot 10片装 = 10 Sheets | 20片装 = 20 Sheets
material 膜布轻薄服帖，精华液充足。
    The thin sheet fits snugly and is soaked in essence.
material 精华含积雪草和泛醇，温和不刺激。
    The essence with centella and panthenol is mild.
point 敷完皮肤水润透亮，不黏腻。
    Leaves skin dewy and radiant, never sticky.
point 独立包装，出差旅行方便携带。
    Individually wrapped for travel.
point 熬夜后急救，肌肤状态明显改善。
    A quick rescue after late nights that visibly helps.

type hand_cream: 护手霜 = Hand Cream
price 29-129
tags 护手霜, 护肤, hand cream
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 樱花 = Cherry Blossom | 乳木果 = Shea Butter | 玫瑰 = Rose | 无香 = Unscented
slot 保湿 = Moisturising | 滋润修护 = Nourishing Repair
slot 礼盒装 = Gift Set | 3支装 = 3-Pack | -
material 添加乳木果油和维生素E，滋润不油腻。
    Shea butter and vitamin E nourish without greasiness.
material 质地细腻，吸收迅速。
    A smooth texture that absorbs quickly.
point 秋冬手部干燥开裂的救星。
    A lifesaver for dry, cracked hands in autumn and winter.
point 小巧便携，放包里随时用。
    Small enough to keep in your bag.
"""

SPORTS_TABLE = """
category sports: 运动户外 = Sports & Outdoors
brands Trailfox, Kinetik, Summitra, Pacegear, Yogalin, Ridgeway Outfitters
scene 正品保障，支持7天无理由退换。
    Genuine product with no-questions-asked returns within 7 days.
scene 运动爱好者的高性价比之选。
    A great-value pick for sports lovers.
scene 专业运动品牌出品，品质可靠。
    Made by a specialist sports brand you can rely on.
scene 适合入门和进阶爱好者。
    Suits beginners and experienced enthusiasts alike.
scene 顺丰包邮，支持运费险。
    Free express shipping with return-shipping insurance.

type yoga_mat: 瑜伽垫 = Yoga Mat
price 59-299
tags 瑜伽垫, 瑜伽, 健身, yoga
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 防滑 = Non-Slip | 体位线 = Alignment-Line | -
slot TPE = TPE | 天然橡胶 = Natural Rubber | NBR = NBR
slot 6mm加厚 = 6 mm Thick | 8mm加厚 = 8 mm Extra-Thick | 4mm = 4 mm
material 双面防滑纹理，出汗也不打滑。
    Textured on both sides so it won't slip when you sweat.
material 环保材质无异味，回弹性好。
    Eco-friendly, odour-free material with good rebound.
point 附赠绑带和收纳袋，携带方便。
    Comes with a strap and a carry bag.
point 宽度加宽至80cm，动作更舒展。
    Widened to 80 cm so you can stretch out fully.

type running_shoes: 跑步鞋 = Running Shoes
price 199-999
tags 跑步鞋, 运动鞋, 跑步, running
noun 跑鞋 = pair of running shoes
slot 女士 = Women's | 男士 = Men's
slot 缓震 = Cushioned | 轻量 = Lightweight | 碳板竞速 = Carbon-Plate Racing
    | 透气网面 = Breathable Mesh
slot 马拉松 = Marathon | -
material 中底采用超临界发泡材料，回弹强劲。
    A supercritical-foam midsole gives a powerful bounce.
material 鞋面为一体织网面，透气包裹。
    A one-piece knit upper is breathable and supportive.
point 耐磨橡胶大底，抓地力好。
    A hard-wearing rubber outsole grips well.
point 适合日常慢跑和长距离训练。
    Suits everyday jogging and long-distance training.
point 尺码标准，建议按平时尺码选购。
    True to size — order your usual size.

type dumbbells: 哑铃 = Dumbbells
price 99-899
tags 哑铃, 健身, 力量训练, dumbbells
noun 哑铃 = set of dumbbells
title {0}{n} {1} = {0} {n}, {1}
slot 可调节 = Adjustable | 包胶 = Rubber-Coated | 六角 = Hex
slot 20kg = 20 kg | 10kg一对 = 10 kg Pair | 24kg = 24 kg
note 可调节: 一秒调节重量，一副顶多副。
    Change the weight in a second — one pair replaces a whole rack.
material 铸铁内芯外包环保橡胶，落地不伤地板。
    A cast-iron core wrapped in eco rubber protects floors.
material 手柄镀铬防滑纹，握持牢固。
    Knurled chrome handles give a secure grip.
point 家庭健身房必备，节省空间。
    A space-saving essential for a home gym.
point 适合增肌塑形训练。
    Ideal for muscle-building and toning workouts.

type backpack: 登山包 = Hiking Backpack
price 199-899
tags 登山包, 背包, 户外, 徒步, backpack
slot 轻量化 = Lightweight | 专业 = Technical | 防水 = Waterproof
slot 30L = 30 L | 40L = 40 L | 50L = 50 L | 65L = 65 L
material 采用高密度防撕裂尼龙面料。
    Made from high-density ripstop nylon.
material 背负系统透气，可调节躯干长度。
    A ventilated harness with adjustable torso length.
point 附带防雨罩，雨天不怕淋湿。
    Includes a rain cover to keep your gear dry.
point 多分仓设计，水袋仓、登山杖挂点齐全。
    Several compartments, a hydration sleeve and trekking-pole loops.

type tent: 帐篷 = Tent
price 299-1899
tags 帐篷, 露营, 户外, tent
slot 双人 = 2-Person | 3-4人 = 3–4 Person | 单人 = 1-Person
slot 露营 = Camping | 超轻 = Ultralight | 防暴雨 = Storm-Proof | 速开 = Pop-Up
material 外帐PU3000mm防水涂层，接缝压胶处理。
    The fly has a PU 3000 mm waterproof coating and taped seams.
material 铝合金帐杆，轻便坚固。
    Aluminium poles are light and strong.
point 双门双前厅设计，通风好。
    Two doors and two vestibules for good airflow.
point 3分钟即可搭建完成。
    Pitches in about three minutes.

type shell_jacket: 冲锋衣 = Outdoor Jacket
price 299-1599
tags 冲锋衣, 外套, 户外, 防水, outdoor jacket
slot 女士 = Women's | 男士 = Men's
slot 三合一 = 3-in-1 | 防水透气 = Waterproof Breathable | 抓绒内胆 = Fleece-Lined
    | 轻量 = Lightweight
material 面料防水指数达10000mm，透湿量8000g/m²/24h。
    The fabric is rated 10,000 mm waterproof with 8,000 g/m²/24h breathability.
material 全压胶工艺，暴雨也不渗水。
    Fully taped seams keep out even heavy rain.
point 可拆卸抓绒内胆，春秋冬三季可穿。
    A removable fleece liner makes it wearable in spring, autumn and winter.
point 防风帽檐可调节，户外徒步登山必备。
    An adjustable storm hood makes it a hiking and climbing essential.

type trekking_poles: 登山杖 = Trekking Poles
price 79-499
tags 登山杖, 徒步, 户外, trekking
noun 登山杖 = set of trekking poles
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 碳纤维 = Carbon-Fibre | 铝合金 = Aluminium
slot 折叠 = Folding | 外锁 = Lever-Lock | 超轻 = Ultralight
slot 一对装 = Pair | 单支 = Single Pole
material 单支重量仅约200克。
    Each pole weighs only about 200 g.
material EVA泡棉握把，吸汗防滑。
    EVA foam grips absorb sweat and don't slip.
point 长度可在100-130cm之间调节。
    Adjusts from 100 to 130 cm.
point 下山时有效减轻膝盖压力。
    Takes strain off your knees on descents.

type hiking_shoes: 徒步鞋 = Hiking Shoes
price 299-1099
tags 徒步鞋, 登山鞋, 户外, 徒步, hiking
noun 徒步鞋 = pair of hiking shoes
slot 女士 = Women's | 男士 = Men's
slot 防水 = Waterproof | 高帮 = High-Top | 低帮 = Low-Top | 轻量 = Lightweight
material 采用防水透气薄膜内衬，涉水不湿脚。
    A waterproof, breathable membrane keeps feet dry through streams.
material 大底为耐磨橡胶，适应多种复杂路面。
    A hard-wearing rubber outsole handles all kinds of rough terrain.
point 鞋头加固防撞，保护脚趾。
    A reinforced toe cap protects against knocks.
point 鞋垫缓震，长时间行走不累脚。
    A cushioned insole keeps feet comfortable on long walks.

type jump_rope: 跳绳 = Jump Rope
price 29-149
tags 跳绳, 健身, 燃脂, jump rope
slot 健身 = Fitness | 儿童 = Kids' | -
slot 计数 = Counting | 钢丝 = Steel-Wire | 无绳 = Cordless | 负重 = Weighted
material 轴承手柄，转动顺滑不缠绳。
    Ball-bearing handles spin smoothly without tangling.
material 绳长可自由调节。
    The rope length is fully adjustable.
point 智能计数，记录次数和卡路里。
    Smart counting records jumps and calories burned.
point 燃脂效率高，居家健身好帮手。
    An efficient fat-burner for home workouts.

type badminton: 羽毛球拍 = Badminton Racket
price 99-699
tags 羽毛球拍, 羽毛球, badminton
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 全碳素 = Full-Carbon | 碳纤维 = Carbon-Fibre
slot 进攻型 = Offensive | 均衡型 = Balanced | 超轻 = Ultralight
slot 单拍 = Single | 双拍 = Set of 2
material 拍框采用高模量碳纤维，强度高、重量轻。
    A high-modulus carbon-fibre frame is strong and light.
material 中杆弹性好，发力轻松。
    A flexible shaft makes power easy to generate.
point 出厂已穿线，拉力约24磅。
    Pre-strung at about 24 lb tension.
point 附赠拍套和手胶。
    Comes with a racket cover and an overgrip.
"""

BABY_TOYS_TABLE = """
category baby-toys: 母婴玩具 = Baby & Toys
brands Littlebud, Miaomiao, Tinysteps, Bubbo, Koalanest
scene 新手爸妈的贴心好物。
    A thoughtful pick for new parents.
scene 通过国家安全标准检测，宝宝使用更放心。
    Tested to national safety standards for peace of mind.
scene 宝妈口碑推荐，复购率高。
    Recommended by parents, with a high repurchase rate.
scene 满月、周岁送礼的好选择。
    A great gift for a baby's first month or first birthday.
scene 支持7天无理由退换，售后无忧。
    7-day no-questions-asked returns for worry-free shopping.

type diapers: 纸尿裤 = Diapers
price 79-259
tags 纸尿裤, 婴儿, 宝宝, diapers
noun 纸尿裤 = pack of diapers
title {0}{n} {1} = {0} {n}, {1}
slot 超薄透气 = Ultra-Thin Breathable | 夜用 = Overnight | 拉拉裤式 = Pull-Up
slot NB码 = Size NB | S码 = Size S | M码 = Size M | L码 = Size L | XL码 = Size XL
material 表层采用柔软无纺布，轻柔亲肤。
    A soft non-woven top sheet is gentle on skin.
material 高分子吸收芯体，瞬吸锁水不回渗。
    A super-absorbent core locks moisture in instantly with no rewetting.
point 3D立体腰围，活动自如不侧漏。
    A 3D waistband lets babies move freely without leaks.
point 尿显线提醒及时更换。
    A wetness indicator shows when it's time to change.
point 无荧光剂、无香精，敏感肌宝宝也能用。
    No optical brighteners or fragrance — fine for sensitive skin.

type stroller: 婴儿推车 = Baby Stroller
price 399-2999
tags 婴儿推车, 推车, 宝宝, stroller
slot 轻便折叠 = Lightweight Foldable | 高景观 = High-View | 双向 = Reversible
    | 可登机 = Cabin-Size
slot 可坐可躺 = Sit-and-Recline | 避震 = Shock-Absorbing | -
material 铝合金车架，自重仅6.5kg。
    An aluminium frame weighs just 6.5 kg.
material 四轮独立避震，走石子路也平稳。
    Independent suspension on all four wheels keeps gravel paths smooth.
point 一键收车，单手即可折叠。
    Folds one-handed with a single button.
point 超大遮阳棚，防紫外线UPF50+。
    An oversized UPF50+ canopy blocks UV.
point 适用0-3岁宝宝。
    Suitable from birth to age three.

type blocks: 积木 = Building Blocks
price 59-599
tags 积木, 益智玩具, 儿童, blocks
noun 积木 = set of building blocks
slot 大颗粒 = Large-Brick | 小颗粒 = Small-Brick | 磁力片 = Magnetic Tile | 木质 = Wooden
slot 城市工程车 = City Construction | 恐龙世界 = Dinosaur World | 城堡 = Castle | -
note 木质: 选用榉木制作，水性漆环保安全。
    Made from beech wood with a safe water-based finish.
material 通过国家3C认证，边角圆润不伤手。
    3C certified, with rounded edges kind to little hands.
material 颜色鲜艳，拼插紧密不易松散。
    Bright colours and a snug fit that holds together.
point 锻炼动手能力和空间想象力。
    Builds motor skills and spatial imagination.
point 附赠收纳箱和图纸。
    Comes with a storage box and instructions.
point 适合3岁以上儿童。
    Suitable for children aged three and up.

type plush: 毛绒玩具 = Plush Toy
price 39-259
tags 毛绒玩具, 玩偶, 礼物, plush
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 安抚 = Soothing | -
slot 小熊 = Teddy Bear | 兔子 = Bunny | 恐龙 = Dinosaur | 柴犬 = Shiba Inu
    | 大熊猫 = Giant Panda
slot 30cm = 30 cm | 50cm = 50 cm
material 采用短毛绒面料，PP棉填充，柔软有弹性。
    Short-pile plush filled with PP cotton, soft and springy.
material 眼睛为绣制，没有小零件，宝宝玩更安全。
    Embroidered eyes and no small parts make it baby-safe.
point 可机洗，不掉毛。
    Machine washable and doesn't shed.
point 宝宝睡觉的好伙伴，也适合送礼。
    A great bedtime buddy and a lovely gift.

type bottle: 奶瓶 = Baby Bottle
price 49-199
tags 奶瓶, 婴儿, 喂养, baby bottle
title {0}{1}{n} {2} = {0} {1} {n}, {2}
slot 防胀气 = Anti-Colic | 宽口径 = Wide-Neck | 新生儿 = Newborn
slot PPSU = PPSU | 玻璃 = Glass | 硅胶 = Silicone
slot 240ml = 240 ml | 160ml = 160 ml | 300ml = 300 ml
note 防胀气: 防胀气阀门设计，减少宝宝吐奶。
    An anti-colic valve helps reduce spit-up.
material 耐高温可蒸煮消毒，不含双酚A。
    Heat-resistant and safe to sterilise by boiling; BPA-free.
material 仿母乳实感奶嘴，宝宝更容易接受。
    A breast-like teat that babies accept more easily.
point 瓶身有清晰刻度，冲奶更方便。
    Clear markings make mixing formula easy.
point 瓶口宽大，清洗方便。
    A wide opening makes cleaning easy.

type rc_car: 遥控车 = RC Car
price 99-599
tags 遥控车, 玩具车, 儿童, rc car
slot 充电 = Rechargeable | -
slot 四驱 = 4WD | -
slot 越野攀爬 = Off-Road Climbing | 高速漂移 = High-Speed Drift | 特技翻滚 = Stunt
material 车身采用耐摔ABS材料，撞击不易损坏。
    A tough ABS body survives crashes.
material 2.4G遥控，多车同玩不干扰。
    2.4 GHz control lets several cars race without interference.
point 最高时速可达25km/h。
    Top speed up to 25 km/h.
point 配两块电池，续航更久。
    Comes with two batteries for longer play.
point 适合6岁以上儿童。
    Suitable for children aged six and up.

type puzzle: 拼图 = Jigsaw Puzzle
price 29-129
tags 拼图, 益智玩具, puzzle
title {2}{1}{n} {0} = {0} {2} {1} {n}
slot 100片 = 100-Piece | 300片 = 300-Piece | 1000片 = 1000-Piece
slot 世界地图 = World Map | 星空 = Starry Sky | 动物园 = Zoo | 中国名胜 = China Landmarks
slot 木质 = Wooden | 纸质 = Cardboard
material 采用环保油墨印刷，色彩鲜艳。
    Printed with eco-friendly inks in vivid colours.
material 切割精准，拼合紧密不松散。
    Precisely cut pieces lock together firmly.
point 锻炼观察力和耐心，亲子互动好选择。
    Builds observation and patience — great for family time.
point 附赠参考图和收纳袋。
    Includes a reference picture and a storage bag.

type picture_book: 绘本 = Picture Book Set
price 49-199
tags 绘本, 儿童图书, 早教, picture book
title {0}{n} {1} {2} = {0} {n}, {1}, {2}
slot 情绪管理 = Emotional Intelligence | 睡前故事 = Bedtime Story
    | 科普百科 = Science Encyclopedia | 习惯养成 = Good Habits
slot 0-3岁 = Ages 0–3 | 3-6岁 = Ages 3–6
slot 全10册 = 10 Volumes | 全8册 = 8 Volumes
material 大开本精装，圆角设计，不易撕坏。
    Large-format hardcovers with rounded corners that resist tearing.
material 大豆油墨印刷，无异味。
    Printed with soy-based inks and no odour.
point 支持扫码听故事，爸爸妈妈讲读更轻松。
    Scan a QR code to hear the stories, making read-alouds easy for parents.
point 故事温馨有趣，培养阅读兴趣。
    Warm, fun stories that grow a love of reading.

type wipes: 婴儿湿巾 = Baby Wipes
price 29-99
tags 湿巾, 婴儿, 宝宝, wipes
noun 湿巾 = pack of baby wipes
title {0}{n} {1} = {0} {n}, {1}
slot 手口专用 = Hand and Mouth | 无香 = Unscented | 加厚 = Extra-Thick
slot 80抽×6包 = 80 Wipes × 6 Packs | 80抽×12包 = 80 Wipes × 12 Packs
    | 便携10抽×20包 = Travel 10 × 20 Packs
material 采用EDI纯水，不含酒精和香精。
    Made with EDI-purified water and no alcohol or fragrance.
material 珍珠纹无纺布，厚实不易破。
    Pearl-textured cloth is thick and tear-resistant.
point 宝宝擦手擦嘴都放心。
    Safe for wiping little hands and mouths.
point 带密封盖，湿润不易干。
    A sealed lid keeps them moist.

type car_seat: 儿童安全座椅 = Child Car Seat
price 599-2999
tags 安全座椅, 儿童, 出行, car seat
noun 安全座椅 = car seat
title {1}{n} {0} = {1} {n}, {0}
slot 0-12岁 = 0–12 Years | 9个月-12岁 = 9 Months–12 Years | 0-4岁 = 0–4 Years
slot 360度旋转 = 360° Rotating | ISOFIX接口 = ISOFIX | -
material 通过ECE R129认证，侧撞保护更安心。
    Certified to ECE R129, with side-impact protection.
material 座椅面料透气可拆洗。
    The breathable seat fabric is removable and washable.
point 头枕10档可调，陪伴宝宝成长。
    A 10-position headrest grows with your child.
point 安装简单牢固，新手也能快速上手。
    Installs firmly and simply, even for first-timers.
"""

PERSONAS_TABLE = """
persona budget_student: 预算有限的大学生 = Budget-conscious student
categories food 0.4, electronics 0.3, books 0.3
tags 性价比, 学生, 速食, 坚果, 充电宝, 编程
price 0-400
search electronics | 耳机 | 性价比高的蓝牙耳机 学生党
    cheap wireless earbuds for students
search electronics | 笔记本电脑 | 轻薄 笔记本 电脑
    lightweight laptop for college
search electronics | 充电宝 | 便宜好用的充电宝 20000毫安
    affordable 20000mah power bank
search books | Python 编程 | Python 入门 书 推荐
    python programming book for beginners
search food | 坚果 牛肉干 | 宿舍囤货 零食 每日坚果
    healthy snacks for my dorm room
search food | 螺蛳粉 自热 小面 酸辣粉 | 螺蛳粉 自热火锅 宵夜
    instant noodles for late night study

persona new_mother: 新手妈妈 = New mother
categories baby-toys 0.6, home 0.2, beauty 0.2
tags 婴儿, 宝宝, 新生儿, 温和, 敏感肌, A类
price 20-3000
search baby-toys | 纸尿裤 | 新生儿 纸尿裤 不红屁屁
    newborn diapers for sensitive skin
search baby-toys | 奶瓶 | 宝宝 奶瓶 防胀气
    anti colic baby bottle
search baby-toys | 推车 | 轻便 婴儿推车 可登机
    lightweight stroller that folds small
search baby-toys | 湿巾 | 婴儿湿巾 手口专用 无香
    unscented baby wipes
search baby-toys | 积木 拼图 绘本 毛绒 | 适合一岁宝宝的益智玩具
    educational toys for a 1 year old
search beauty | 面霜 护手霜 | 孕期可以用的温和面霜
    gentle moisturiser safe during pregnancy
search home | 四件套 毛巾 | A类 纯棉 四件套 婴儿可用
    soft cotton bedding safe for babies

persona tech_enthusiast: 数码发烧友 = Tech enthusiast
categories electronics 0.8, books 0.2
tags 机械键盘, 降噪, 4K, 高刷, 机器学习, 深度学习, 智能手表
price 99-10000
search electronics | 机械键盘 | 机械键盘 青轴 热插拔
    hot swappable mechanical keyboard
search electronics | 降噪 | 主动降噪耳机 音质好
    best noise cancelling earbuds
search electronics | 耳机 | 续航长的无线耳机
    wireless earbuds with long battery life
search electronics | 显示器 | 4K 显示器 修图 设计
    4k monitor for photo editing
search electronics | 智能手表 | 智能手表 GPS 血氧
    smartwatch with gps and blood oxygen
search books | 深度学习 机器学习 推荐系统 | 深度学习 推荐系统 书籍
    deep learning and recommender systems books

persona fashion_woman: 时尚女性 = Fashion-conscious woman
categories clothing 0.65, beauty 0.35
tags 女士, 女性, 连衣裙, 风衣, 口红, 精华, 大衣
price 80-2000
search clothing | 羽绒服 | 女士长款羽绒服 保暖 显瘦
    women's long down coat warm
search clothing | 外套 夹克 风衣 大衣 | 我最近在找一件外套，性价比高且质量好的
    looking for a good quality jacket that's good value for money
search clothing | 连衣裙 | 法式 中长款 连衣裙
    french style midi dress
search clothing | 风衣 | 双排扣风衣 女 春秋
    women's double breasted trench coat
search beauty | 口红 | 口红 显白 不拔干
    long lasting lipstick that doesn't dry lips
search beauty | 精华 | 敏感肌 补水 精华
    hydrating serum for sensitive skin

persona fitness_fan: 健身达人 = Fitness fan
categories sports 0.7, food 0.3
tags 健身, 蛋白, 瑜伽, 跑步, 哑铃, 燃脂, 高蛋白
price 30-1500
search food | 蛋白粉 | 乳清蛋白粉 增肌 巧克力味
    chocolate whey protein for muscle gain
search sports | 哑铃 | 可调节哑铃 家用
    adjustable dumbbells for home gym
search sports | 瑜伽垫 | 加厚 防滑 瑜伽垫
    thick non slip yoga mat
search sports | 跑步鞋 | 缓震 跑步鞋 马拉松
    cushioned running shoes for marathon training
search food | 牛肉干 坚果 | 高蛋白 低脂 零食
    high protein low fat snacks
search sports | 跳绳 | 计数跳绳 燃脂
    jump rope with counter

persona book_lover: 爱书人 = Book lover
categories books 0.85, home 0.15
tags 小说, 历史, 唐诗, 宋词, 精装, 台灯, 香薰
price 20-500
search books | 小说 | 悬疑推理小说 推荐
    best mystery novels
search books | 宋朝 丝绸之路 敦煌 简史 | 宋朝历史 通俗读物
    popular history books about ancient china
search books | 唐诗 宋词 | 唐诗宋词 精装
    classical chinese poetry hardcover
search books | 星海 银河 时间的褶皱 | 科幻小说 精装版
    science fiction novel hardcover
search home | 台灯 | 护眼台灯 晚上看书
    reading lamp that is easy on the eyes
search books | 小说 | 适合睡前读的温暖小说
    cozy novels to read before bed

persona home_cook: 家庭大厨 = Home cook
categories food 0.5, home 0.5
tags 厨房, 不粘, 刀具, 大米, 酱油, 橄榄油, 电饭煲, 有机
price 20-1500
search home | 炒锅 | 不粘炒锅 少油烟
    non stick wok for induction hob
search food | 酱油 | 零添加 生抽 酿造
    naturally brewed soy sauce no additives
search food | 大米 | 五常大米 稻花香 新米
    fragrant rice 5kg new harvest
search food | 橄榄油 | 特级初榨橄榄油 凉拌
    extra virgin olive oil for salads
search home | 刀具 | 厨房刀具套装 锋利 不生锈
    sharp kitchen knife set that won't rust
search home | 电饭煲 | 小型电饭煲 家用 3-4人
    small rice cooker for a family of three

persona outdoor_hiker: 户外徒步爱好者 = Outdoor hiker
categories sports 0.65, clothing 0.35
tags 户外, 防水, 徒步, 登山, 帐篷, 冲锋衣, 羽绒服, 防风
price 50-3000
search sports | 冲锋衣 | 防水冲锋衣 徒步 登山
    waterproof hiking jacket
search sports | 登山包 | 轻量化 登山包 40L
    lightweight 40l hiking backpack
search clothing | 羽绒服 | 冬季户外 保暖羽绒服
    warm down jacket for winter hiking
search sports | 帐篷 | 双人帐篷 露营 防暴雨
    2 person tent for camping in the rain
search sports | 登山杖 | 碳纤维 登山杖 折叠
    carbon fibre trekking poles
search clothing | 夹克 风衣 | 防风 夹克 户外 春秋
    windproof jacket for spring hikes

persona office_worker: 都市白领 = Office worker
categories clothing 0.4, electronics 0.35, food 0.25
tags 通勤, 商务, 咖啡, 衬衫, 鼠标, 降噪, 风衣
price 50-4000
search clothing | 风衣 | 我想买一件通勤穿的风衣，质量好一点的
    good quality trench coat for the office
search clothing | 衬衫 | 免烫 商务衬衫 男
    non iron business shirt
search clothing | 外套 夹克 风衣 | 我最近在找一件外套，性价比高且质量好的
    affordable good quality jacket for work
search food | 咖啡豆 | 咖啡豆 中深烘 手冲
    medium dark roast coffee beans
search electronics | 鼠标 | 人体工学 静音鼠标
    quiet ergonomic mouse
search electronics | 降噪 耳机 | 降噪耳机 地铁通勤
    noise cancelling earbuds for commuting

persona gamer: 游戏玩家 = Gamer
categories electronics 0.85, food 0.15
tags 电竞, 游戏, 机械键盘, RGB, 显示器, 鼠标, 红轴
price 99-12000
search electronics | 机械键盘 | 电竞 机械键盘 RGB 红轴
    rgb gaming keyboard red switches
search electronics | 显示器 | 2K 165Hz 电竞显示器
    1440p 165hz gaming monitor
search electronics | 游戏 笔记本 | 高性能游戏本
    gaming laptop with good cooling
search electronics | 鼠标 | 轻量化 游戏鼠标
    lightweight gaming mouse
search electronics | 耳机 | 低延迟 游戏耳机
    low latency earbuds for gaming
search food | 牛肉干 坚果 自热 螺蛳粉 | 熬夜打游戏 零食 宵夜
    snacks for late night gaming

persona gift_shopper: 送礼达人 = Gift shopper
categories food 0.45, beauty 0.3, home 0.25
tags 礼盒, 送礼, 礼物, 有机, 香薰, 蜂蜜
price 80-1500
search food | 绿茶 | 有机绿茶礼盒 送长辈
    organic green tea gift box for parents
search food | 坚果 | 坚果礼盒 过年送礼
    nut gift box for chinese new year
search food | 蜂蜜 | 天然蜂蜜 礼盒
    natural honey gift
search home | 香薰 | 香薰蜡烛 送女朋友
    scented candle gift for my girlfriend
search beauty | 口红 | 口红礼盒 生日礼物
    lipstick gift set birthday present
search beauty | 护手霜 | 护手霜礼盒 送闺蜜
    hand cream gift set for friends

persona young_father: 新手奶爸 = Young father
categories baby-toys 0.65, sports 0.2, electronics 0.15
tags 儿童, 宝宝, 遥控, 积木, 安全座椅, 帐篷, 露营
price 30-3000
search baby-toys | 遥控车 | 儿童遥控车 越野 四驱
    4wd remote control car for kids
search baby-toys | 积木 | 大颗粒积木 3岁
    building blocks for a 3 year old
search baby-toys | 安全座椅 | 安全座椅 ISOFIX 360度旋转
    isofix car seat that rotates
search sports | 帐篷 | 亲子露营 帐篷
    family camping tent
search baby-toys | 绘本 | 睡前故事 绘本 3-6岁
    bedtime picture books for preschoolers
search electronics | 智能手表 | 儿童智能手表 定位 通话
    kids smartwatch with calling
"""

REVIEWS_TABLE = """
opener pos: 物流很快，包装完好。
    Fast delivery and well packaged.
opener pos: 第二次购买了。
    Second time buying this.
opener mid: 收到了，说说感受。
    It arrived, so here are my thoughts.
opener neg: 非常失望。
    Very disappointed.
closer pos: 推荐购买！
    Highly recommend!
closer pos: 五星好评。
    Five stars.
closer mid: 再用一段时间看看。
    I'll see how it holds up.
closer neg: 不推荐。
    Not recommended.
closer neg: 已申请退货。
    I've asked for a refund.

review clothing pos: 这款{p}做工很好，面料摸起来很舒服，尺码也标准。
    The {p} is well made, the fabric feels lovely and the sizing is spot on.
review clothing pos: {p}上身效果比图片还好看，版型很正，家人都说好看。
    The {p} looks even better on than in the photos; great cut, and my family loves it.
review clothing pos: 质量好，性价比高，这个价格买到这样的{p}很值。
    Good quality and great value — at this price the {p} is a steal.
review clothing mid: {p}还可以，就是袖子有点长，整体中规中矩。
    The {p} is okay, though the sleeves are a bit long. Pretty average overall.
review clothing mid: 颜色和图片有一点色差，{p}本身还行。
    The colour differs slightly from the photos, but the {p} itself is fine.
review clothing neg: {p}线头很多，洗了一次就起球了。
    The {p} has loose threads everywhere and started pilling after one wash.
review clothing neg: 尺码偏小很多，{p}面料也比想象中薄。
    The {p} runs very small and the fabric is thinner than I expected.

review electronics pos: {p}用了一周，性能很稳定，没有出现任何问题。
    I've used the {p} for a week; it's rock-solid with no issues at all.
review electronics pos: 做工精致，手感很好，这款{p}物超所值。
    Beautifully made and feels great — the {p} is worth every penny.
review electronics pos: 开箱就能用，设置很简单，{p}比预期的还要好。
    Works straight out of the box, setup is simple and the {p} beat my expectations.
review electronics mid: {p}功能够用，但说明书写得不太清楚。
    The {p} does the job, but the manual isn't very clear.
review electronics mid: 整体还行，{p}偶尔有点小毛病。
    It's fine overall, though the {p} has the odd glitch.
review electronics neg: {p}用了三天就出故障了，售后处理很慢。
    The {p} broke down after three days and after-sales support was slow.
review electronics neg: 和宣传的不符，{p}实际体验很一般。
    Not as advertised — the {p} is mediocre in real use.

review books pos: 印刷清晰，纸张很好，内容深入浅出，值得一读。
    Crisp printing, nice paper, and clear, insightful content — well worth reading.
review books pos: 一口气读完了，内容非常精彩，已经推荐给朋友了。
    Read it in one sitting — absolutely gripping. Already recommended it to friends.
review books pos: 包装很好，书角没有磕碰，正版无疑。
    Well packaged with no dented corners; clearly a genuine copy.
review books mid: 内容还可以，但有些章节略显啰嗦。
    The content is decent, but some chapters drag a bit.
review books mid: 书不错，就是快递把封面压皱了。
    Good book, but the cover got creased in delivery.
review books neg: 内容很浅，和简介描述差距较大。
    Very shallow content, nothing like the blurb.
review books neg: 印刷质量差，有好几页字迹模糊。
    Poor printing — several pages are blurry.

review food pos: {p}味道很好，很新鲜，已经回购好几次了。
    The {p} tastes great and is very fresh — I've bought it several times.
review food pos: 包装精美，日期很新，{p}送人很有面子。
    Lovely packaging and a recent date; the {p} makes an impressive gift.
review food pos: 性价比高，{p}分量足，物流也快。
    Great value, a generous amount of {p} and fast delivery.
review food mid: {p}味道一般，没有想象中那么好。
    The {p} tastes average, not as good as I'd hoped.
review food mid: {p}还行，就是价格有点贵。
    The {p} is fine, but a bit pricey.
review food neg: 收到时包装破损，{p}有点受潮了。
    The parcel arrived damaged and the {p} was a bit damp.
review food neg: {p}味道很奇怪，不会回购。
    The {p} tastes odd. Won't buy again.

review home pos: {p}质量很好，很实用，家里用着很方便。
    The {p} is high quality and really practical around the house.
review home pos: 做工扎实，{p}比实体店便宜不少。
    Solidly made, and the {p} was much cheaper than in the shops.
review home pos: 这款{p}颜值很高，和家里风格很搭。
    The {p} looks great and matches our home perfectly.
review home mid: {p}能用，但细节做工一般。
    The {p} works, but the finishing is so-so.
review home mid: {p}比想象的小一点，凑合用。
    The {p} is a bit smaller than I expected, but it'll do.
review home neg: {p}有明显异味，放了几天还没散。
    The {p} has a strong smell that hasn't faded after several days.
review home neg: 用了没多久{p}就坏了，质量不行。
    The {p} broke soon after I started using it. Poor quality.

review beauty pos: 这款{p}很温和，用了不过敏，非常满意。
    The {p} is very gentle with no irritation at all — really happy with it.
review beauty pos: 用着很舒服，{p}会一直回购。
    Really pleasant to use — I'll keep buying this {p}.
review beauty pos: 正品，味道好闻，{p}性价比很高。
    Genuine, smells nice, and the {p} is great value.
review beauty mid: {p}效果一般，没有宣传的那么神奇。
    The {p} is okay, not as miraculous as advertised.
review beauty mid: {p}用着还行，就是味道有点重。
    The {p} is fine, but the scent is a bit strong.
review beauty neg: 用了{p}脸上起了小疙瘩，不适合我。
    I broke out after using the {p}; it's not for me.
review beauty neg: {p}包装和专柜不一样，有点担心是不是正品。
    The {p} packaging differs from the store version, so I worry it isn't genuine.

review sports pos: {p}质量很好，用起来很舒服，运动时很给力。
    The {p} is great quality, comfortable and performs well during workouts.
review sports pos: 做工扎实，{p}比专卖店便宜，很满意。
    Solidly made and cheaper than the brand store — very happy with the {p}.
review sports pos: 周末带着{p}出门，表现超出预期。
    Took the {p} out at the weekend and it exceeded my expectations.
review sports mid: {p}还行，就是有点重。
    The {p} is okay, just a bit heavy.
review sports mid: {p}中规中矩，对得起这个价格。
    The {p} is decent and fair for the price.
review sports neg: {p}用了两次就坏了，质量太差。
    The {p} fell apart after two uses. Terrible quality.
review sports neg: {p}和描述不符，做工粗糙。
    The {p} doesn't match the description and feels cheaply made.

review baby-toys pos: 宝宝很喜欢这款{p}，材质安全，没有异味。
    Our little one loves the {p}; safe materials and no smell.
review baby-toys pos: {p}质量很好，新手爸妈用着很省心。
    The {p} is great quality and makes life easier for new parents.
review baby-toys pos: 做工精细，{p}性价比高，已经推荐给宝妈群了。
    Well made and great value — I've recommended the {p} to my parents' group.
review baby-toys mid: {p}还行，就是比想象的小一点。
    The {p} is fine, just a little smaller than I expected.
review baby-toys mid: {p}质量一般，价格偏贵。
    The {p} is average quality and a bit overpriced.
review baby-toys neg: {p}有刺鼻的味道，不敢给宝宝用。
    The {p} has a harsh chemical smell; I won't let my baby use it.
review baby-toys neg: {p}边缘有毛刺，做工太粗糙了。
    The {p} has rough edges — very poorly finished.
"""

# Items that later tests and demos rely on: (category, product type, Chinese modifiers).
ANCHORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("clothing", "down_jacket", ("女士", "加长款", "保暖")),  # 女士加长款保暖羽绒服
    ("clothing", "down_jacket", ("女性", "长款连帽", "")),  # 女性长款连帽羽绒服
    ("clothing", "down_jacket", ("女士", "过膝", "加厚")),
    ("clothing", "down_jacket", ("男士", "短款", "轻薄")),
    ("clothing", "jacket", ("高性价比", "男士", "")),  # 高性价比男士夹克外套
    ("clothing", "jacket", ("高性价比", "女士", "休闲")),
    ("clothing", "trench_coat", ("高性价比", "女士", "双排扣")),
    ("clothing", "trench_coat", ("", "男士", "英伦")),
    ("clothing", "wool_coat", ("女士", "双面呢")),
    ("electronics", "keyboard", ("有线", "87键", "青轴")),  # 有线87键机械键盘青轴
    ("electronics", "keyboard", ("无线三模", "104键", "青轴")),
    ("electronics", "earbuds", ("主动降噪", "真无线")),
    ("food", "green_tea", ("有机", "", "250g")),  # 有机绿茶礼盒 250g
    ("food", "green_tea", ("有机", "龙井", "500g")),
)

ZH_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
ZH_GIVEN_NAMES = (
    "小雨 子涵 浩然 思琪 一鸣 雨桐 嘉怡 俊杰 欣妍 梓轩 "
    "佳琪 明轩 诗涵 宇航 晓峰 静怡 文博 若曦 志强 晨阳"
).split()
EN_FIRST_NAMES = (
    "Emily James Olivia Daniel Sophie Michael Grace Ryan Chloe Ethan Hannah Lucas Mia Noah Zoe "
    "Oliver Amelia Jack Isla Leo Ava Henry Ruby Sam"
).split()
EN_LAST_NAMES = (
    "Smith Chen Johnson Wong Brown Lee Miller Garcia Taylor Wilson Liu Martin Clarke Evans Ng Park"
).split()

# Local hours (UTC+8) at which sessions start, weighted towards lunch time and the evening.
SESSION_HOURS = tuple(range(7, 24))
SESSION_HOUR_WEIGHTS = (1, 2, 3, 3, 3, 5, 5, 3, 3, 3, 3, 4, 6, 8, 9, 8, 5)

# --------------------------------------------------------------------------------------------
# Reading the tables
# --------------------------------------------------------------------------------------------

Pair = tuple[str, str]
"""A (Chinese, English) pair: a word, a phrase or a whole sentence and its translation."""

EMPTY: Pair = ("", "")


@dataclass(frozen=True)
class ProductType:
    """One kind of product and the phrases its titles and descriptions are composed from."""

    key: str
    name: Pair
    price: tuple[float, float]
    tags: tuple[str, ...]
    slots: tuple[tuple[Pair, ...], ...]
    notes: dict[str, Pair]
    materials: tuple[Pair, ...]
    points: tuple[Pair, ...]
    noun: Pair
    title: Pair | None = None  # (zh, en) templates
    tag_slots: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Category:
    """A top-level shop category with its brands, closing sentences and product types."""

    slug: str
    name: Pair
    brands: tuple[str, ...]
    scenes: tuple[Pair, ...]
    types: tuple[ProductType, ...]


@dataclass(frozen=True)
class Query:
    """A search a persona might type, in both languages, and what it is looking for."""

    text: Pair
    category: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Persona:
    """A kind of shopper: what they browse, what they like and what they can afford."""

    slug: str
    name: Pair
    categories: dict[str, float]
    tags: tuple[str, ...]
    price: tuple[float, float]
    queries: tuple[Query, ...]


@dataclass(frozen=True)
class ReviewPhrases:
    """Review building blocks by sentiment ("pos", "mid", "neg")."""

    openers: dict[str, tuple[Pair, ...]]
    closers: dict[str, tuple[Pair, ...]]
    bodies: dict[tuple[str, str], tuple[Pair, ...]]  # (category, sentiment) -> bodies


class TableError(ValueError):
    """A data table line could not be read."""


@dataclass
class _Entry:
    directive: str
    text: str
    more: list[str] = field(default_factory=list)  # indented continuation lines

    def pair(self) -> Pair:
        """``中文 = English`` on the line itself."""
        zh, sep, en = self.text.partition(" = ")
        if not sep:
            raise TableError(f"{self.directive} {self.text!r}: expected '中文 = English'")
        return zh.strip(), en.strip()

    def translated(self, text: str | None = None) -> Pair:
        """The Chinese text on the line and the English on the one indented line below it."""
        if len(self.more) != 1:
            raise TableError(f"{self.directive} {self.text!r}: expected one English line below")
        return (self.text if text is None else text), self.more[0]

    def keyed(self) -> tuple[str, Pair]:
        """``KEY: 中文`` with the English below."""
        key, sep, zh = self.text.partition(": ")
        if not sep:
            raise TableError(f"{self.directive} {self.text!r}: expected 'KEY: 中文'")
        return key.strip(), self.translated(zh.strip())

    def range(self) -> tuple[float, float]:
        low, _, high = self.text.partition("-")
        return float(low), float(high)

    def words(self) -> tuple[str, ...]:
        return tuple(word.strip() for word in self.text.split(",") if word.strip())


def _entries(table: str) -> list[_Entry]:
    """Split a table into entries: unindented directive lines and their indented followers."""
    entries: list[_Entry] = []
    for line in table.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            if not entries:
                raise TableError(f"continuation line without an entry: {line!r}")
            entries[-1].more.append(line.strip())
        else:
            directive, _, text = line.partition(" ")
            entries.append(_Entry(directive, text.strip()))
    return entries


def _slot(entry: _Entry) -> tuple[Pair, ...]:
    if any(not line.startswith("|") for line in entry.more):
        raise TableError(f"slot {entry.text!r}: continuation lines must start with '|'")
    options = []
    for spec in " ".join([entry.text, *entry.more]).split("|"):
        spec = spec.strip()
        options.append(EMPTY if spec == "-" else _Entry("slot", spec).pair())
    return tuple(options)


def _product_type(key: str, name: Pair, entries: list[_Entry]) -> ProductType:
    fields: dict[str, Any] = {"slots": [], "notes": {}, "materials": [], "points": []}
    for entry in entries:
        match entry.directive:
            case "price":
                fields["price"] = entry.range()
            case "tags":
                fields["tags"] = entry.words()
            case "tag-slots":
                fields["tag_slots"] = tuple(int(n) for n in entry.text.split() if n != "-")
            case "noun":
                fields["noun"] = entry.pair()
            case "title":
                fields["title"] = entry.pair()
            case "slot":
                fields["slots"].append(_slot(entry))
            case "note":
                word, sentence = entry.keyed()
                fields["notes"][word] = sentence
            case "material" | "point":
                fields[entry.directive + "s"].append(entry.translated())
            case _:
                raise TableError(f"type {key}: unknown directive {entry.directive!r}")
    words = {option[0] for slot in fields["slots"] for option in slot}
    if unknown := set(fields["notes"]) - words:
        raise TableError(f"type {key}: notes for modifiers it does not have: {sorted(unknown)}")
    if not fields["materials"] or not fields["points"]:
        raise TableError(f"type {key}: needs at least one material and one point")
    return ProductType(
        key=key,
        name=name,
        price=fields["price"],
        tags=fields["tags"],
        slots=tuple(fields["slots"]),
        notes=fields["notes"],
        materials=tuple(fields["materials"]),
        points=tuple(fields["points"]),
        noun=fields.get("noun") or (name[0], name[1].lower()),
        title=fields.get("title"),
        tag_slots=fields.get("tag_slots"),
    )


def _category(table: str) -> Category:
    """Read one category table (see the format above)."""
    entries = _entries(table)
    head = entries[0]
    if head.directive != "category":
        raise TableError(f"a category table must start with 'category', not {head.text!r}")
    slug, _, names = head.text.partition(": ")
    brands: tuple[str, ...] = ()
    scenes: list[Pair] = []
    types: list[ProductType] = []
    pending: tuple[str, Pair, list[_Entry]] | None = None
    for entry in [*entries[1:], _Entry("type", "")]:  # the sentinel closes the last type
        if entry.directive == "type":
            if pending is not None:
                types.append(_product_type(*pending))
            key, _, name = entry.text.partition(": ")
            pending = (key, _Entry("type", name).pair() if name else EMPTY, [])
        elif pending is not None:
            pending[2].append(entry)
        elif entry.directive == "brands":
            brands = entry.words()
        elif entry.directive == "scene":
            scenes.append(entry.translated())
        else:
            raise TableError(f"category {slug}: unexpected {entry.directive!r} before any type")
    return Category(slug, _Entry("category", names).pair(), brands, tuple(scenes), tuple(types))


def _personas(table: str) -> tuple[Persona, ...]:
    """Read the persona table."""
    personas: list[dict[str, Any]] = []
    for entry in _entries(table):
        if entry.directive == "persona":
            slug, _, names = entry.text.partition(": ")
            personas.append({"slug": slug, "name": _Entry("persona", names).pair(), "queries": []})
        elif not personas:
            raise TableError(f"{entry.directive!r} before the first persona")
        elif entry.directive == "categories":
            personas[-1]["categories"] = {
                slug: float(weight) for slug, weight in (word.split() for word in entry.words())
            }
        elif entry.directive == "tags":
            personas[-1]["tags"] = entry.words()
        elif entry.directive == "price":
            personas[-1]["price"] = entry.range()
        elif entry.directive == "search":
            category, keywords, text = (part.strip() for part in entry.text.split("|", 2))
            query = Query(entry.translated(text), category, tuple(keywords.split()))
            personas[-1]["queries"].append(query)
        else:
            raise TableError(f"persona table: unknown directive {entry.directive!r}")
    return tuple(
        Persona(**{**persona, "queries": tuple(persona["queries"])}) for persona in personas
    )


def _reviews(table: str) -> ReviewPhrases:
    """Read the review phrase table."""
    parts: dict[str, dict[Any, list[Pair]]] = {"opener": {}, "closer": {}, "review": {}}
    for entry in _entries(table):
        if entry.directive not in parts:
            raise TableError(f"review table: unknown directive {entry.directive!r}")
        key, sentence = entry.keyed()
        if entry.directive == "review":
            category, sentiment = key.split()
            parts["review"].setdefault((category, sentiment), []).append(sentence)
        else:
            parts[entry.directive].setdefault(key, []).append(sentence)
    openers, closers, bodies = (
        {key: tuple(values) for key, values in parts[name].items()}
        for name in ("opener", "closer", "review")
    )
    return ReviewPhrases(openers, closers, bodies)


CATEGORIES: tuple[Category, ...] = tuple(
    _category(table)
    for table in (
        CLOTHING_TABLE,
        ELECTRONICS_TABLE,
        BOOKS_TABLE,
        FOOD_TABLE,
        HOME_TABLE,
        BEAUTY_TABLE,
        SPORTS_TABLE,
        BABY_TOYS_TABLE,
    )
)
PERSONAS: tuple[Persona, ...] = _personas(PERSONAS_TABLE)
REVIEWS: ReviewPhrases = _reviews(REVIEWS_TABLE)

# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


@dataclass
class DemoData:
    """The generated demo shop: plain dicts, ready for JSONL or the importer."""

    items: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    behaviours: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Item:
    """An item's record plus what the behaviour simulation needs to know about it."""

    record: dict[str, Any]
    category: str
    noun: Pair
    price: float
    text: str  # Chinese title and tags, for keyword and tag matching
    popularity: float
    anchor: bool = False

    @property
    def external_id(self) -> str:
        return self.record["external_id"]


@dataclass
class _Shopper:
    """A user: their persona and personal quirks."""

    external_id: str
    name: str
    persona: Persona
    lang: str
    categories: dict[str, float]
    price: tuple[float, float]
    device: str
    search_rate: float
    sessions: int

    @property
    def record(self) -> dict[str, Any]:
        attributes = {"persona": self.persona.slug, "name": self.name, "lang": self.lang}
        return {"external_id": self.external_id, "attributes": attributes}

    def likes(self, item: _Item) -> bool:
        """Whether the item is in one of the persona's categories."""
        return item.category in self.categories

    def loves(self, item: _Item) -> bool:
        """Whether the item is in the persona's categories, price range and taste."""
        low, high = self.price
        return (
            self.likes(item)
            and low <= item.price <= high
            and any(tag in item.text for tag in self.persona.tags)
        )


def _tidy(text: str) -> str:
    """Collapse the gaps and dangling commas that empty modifiers leave behind."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,:])", r"\1", text)
    return text.strip(" ,")


def _render_title(ptype: ProductType, options: Sequence[Pair]) -> Pair:
    """The (zh, en) title of a product type with the chosen modifiers."""
    titles = []
    for lang in (0, 1):
        words = [option[lang] for option in options]
        if ptype.title:
            titles.append(ptype.title[lang].format(*words, n=ptype.name[lang]))
        else:
            titles.append(("" if lang == 0 else " ").join([*words, ptype.name[lang]]))
    return _tidy(titles[0]), _tidy(titles[1])


def _describe(
    rng: random.Random, category: Category, ptype: ProductType, options: Sequence[Pair]
) -> Pair:
    """A 2-3 sentence (zh, en) description: material, selling points, maybe a closing line."""
    sentences = [rng.choice(ptype.materials)]
    sentences += [ptype.notes[zh] for zh, _ in options if zh in ptype.notes][:2]
    if len(sentences) < 3:
        sentences.append(rng.choice(ptype.points))
    if len(sentences) < 3 and rng.random() < 0.8:
        sentences.append(rng.choice(category.scenes))
    return "".join(zh for zh, _ in sentences), " ".join(en for _, en in sentences)


def _tags(ptype: ProductType, options: Sequence[Pair]) -> list[str]:
    """The type's tags plus its word-like modifiers (not sizes, weights or long phrases)."""
    tags = list(ptype.tags)
    for index, (zh, _) in enumerate(options):
        if ptype.tag_slots is not None and index not in ptype.tag_slots:
            continue
        if zh and len(zh) <= 6 and not re.search(r"\d", zh):
            tags.append(zh)
    if any("性价比" in zh for zh, _ in options):
        tags.append("性价比")
    return list(dict.fromkeys(tags))


def _price(rng: random.Random, low: float, high: float, bargain: bool) -> float:
    """A shop-like price (199.0, 459.9, 89.9...) in the range; bargains in its lower half."""
    if bargain:
        high = low + (high - low) * 0.45
    raw = rng.uniform(low, high)
    if raw >= 100:
        price = (int(raw) // 10) * 10 + rng.choice((9.0, 9.0, 8.0, 9.9))
    else:
        price = int(raw) + rng.choice((0.9, 0.9, 0.8, 0.0))
    return round(price, 2)


def _find_options(ptype: ProductType, words: Sequence[str]) -> tuple[Pair, ...]:
    """Look up an anchor's modifiers by their Chinese text."""
    found = []
    for slot, word in zip(ptype.slots, words, strict=True):
        matches = [option for option in slot if option[0] == word]
        if not matches:
            raise ValueError(f"{ptype.key}: no modifier {word!r}")
        found.append(matches[0])
    return tuple(found)


def _build_items(rng: random.Random) -> list[_Item]:
    """Compose ITEMS_PER_CATEGORY items with distinct titles per category, anchors first."""
    items: list[_Item] = []
    seen: set[str] = set()
    for category in CATEGORIES:
        by_key = {ptype.key: ptype for ptype in category.types}
        planned = [
            (by_key[key], _find_options(by_key[key], words))
            for slug, key, words in ANCHORS
            if slug == category.slug
        ]
        types = list(category.types)
        rng.shuffle(types)
        made = attempts = 0
        while made < ITEMS_PER_CATEGORY:
            anchor = made < len(planned)
            if anchor:
                ptype, options = planned[made]
            else:
                if attempts > 200 * ITEMS_PER_CATEGORY:
                    raise RuntimeError(f"cannot compose enough distinct {category.slug} items")
                ptype = types[attempts % len(types)]
                attempts += 1
                options = tuple(rng.choice(slot) for slot in ptype.slots)
            title, title_en = _render_title(ptype, options)
            if title in seen or title_en in seen:
                if anchor:
                    raise ValueError(f"duplicate anchor title {title!r}")
                continue
            seen.update((title, title_en))
            description, description_en = _describe(rng, category, ptype, options)
            price = _price(rng, *ptype.price, bargain="性价比" in description)
            tags = _tags(ptype, options)
            record = {
                "external_id": f"sku-{len(items) + 1:05d}",
                "title": title,
                "description": description,
                "category": category.slug,
                "tags": tags,
                "attributes": {
                    "title_en": title_en,
                    "description_en": description_en,
                    "price": price,
                    "brand": rng.choice(category.brands),
                    "category_zh": category.name[0],
                    "category_en": category.name[1],
                },
                "is_active": True,
            }
            text = " ".join([title, *tags])
            popularity = rng.lognormvariate(0.0, 0.8)
            items.append(_Item(record, category.slug, ptype.noun, price, text, popularity, anchor))
            made += 1
    candidates = [item for item in items if not item.anchor]
    for item in rng.sample(candidates, round(len(items) * INACTIVE_SHARE)):
        item.record["is_active"] = False
    return items


def _build_users(rng: random.Random) -> list[_Shopper]:
    """USERS_PER_PERSONA users per persona, a third of each persona shopping in English."""
    english = USERS_PER_PERSONA // 3
    plan = [
        (persona, lang)
        for persona in PERSONAS
        for lang in ["en"] * english + ["zh"] * (USERS_PER_PERSONA - english)
    ]
    rng.shuffle(plan)
    zh_names = [surname + given for surname in ZH_SURNAMES for given in ZH_GIVEN_NAMES]
    en_names = [f"{first} {last}" for first in EN_FIRST_NAMES for last in EN_LAST_NAMES]
    names = {
        "zh": rng.sample(zh_names, sum(lang == "zh" for _, lang in plan)),
        "en": rng.sample(en_names, sum(lang == "en" for _, lang in plan)),
    }
    shoppers = []
    for number, (persona, lang) in enumerate(plan, start=1):
        low, high = persona.price
        shoppers.append(
            _Shopper(
                external_id=f"u-{number:04d}",
                name=names[lang].pop(),
                persona=persona,
                lang=lang,
                categories={
                    slug: weight * rng.uniform(0.7, 1.3)
                    for slug, weight in persona.categories.items()
                },
                price=(low * rng.uniform(0.7, 1.0), high * rng.uniform(0.8, 1.3)),
                device="mobile" if rng.random() < 0.7 else "desktop",
                search_rate=rng.uniform(0.25, 0.55),
                sessions=max(4, min(30, round(rng.lognormvariate(2.4, 0.4)))),
            )
        )
    return shoppers


def _affinity(item: _Item, shopper: _Shopper, keywords: Sequence[str] = ()) -> float:
    """How likely this shopper is to look at this item (an unnormalised weight)."""
    weight = item.popularity
    if not item.record["is_active"]:
        weight *= 0.15
    low, high = shopper.price
    if not low <= item.price <= high:
        weight *= 0.2
    if any(tag in item.text for tag in shopper.persona.tags):
        weight *= 2.5
    if keywords and any(keyword in item.text for keyword in keywords):
        weight *= 10.0
    return weight


def _pick(
    rng: random.Random,
    pool: Sequence[_Item],
    shopper: _Shopper,
    keywords: Sequence[str],
    exclude: set[str],
) -> _Item:
    """Pick an item from a category pool, weighted by the shopper's affinity."""
    weights = [
        0.0 if item.external_id in exclude else _affinity(item, shopper, keywords) for item in pool
    ]
    if not any(weights):
        weights = [1.0] * len(pool)
    return rng.choices(pool, weights=weights, k=1)[0]


def _rating(rng: random.Random, item: _Item, shopper: _Shopper) -> int:
    """1-5 stars: generous for items that suit the persona, mixed for the others."""
    if shopper.loves(item):
        weights = (1, 2, 7, 32, 58)
    elif shopper.likes(item):
        weights = (2, 4, 14, 42, 38)
    else:
        weights = (10, 16, 34, 26, 14)
    return rng.choices((1, 2, 3, 4, 5), weights=weights, k=1)[0]


def _review_text(rng: random.Random, item: _Item, stars: int, lang: str) -> str:
    """A short review in the shopper's language, its tone following the stars."""
    sentiment = "pos" if stars >= 4 else "mid" if stars == 3 else "neg"
    index = 0 if lang == "zh" else 1
    parts = []
    if rng.random() < 0.5:
        parts.append(rng.choice(REVIEWS.openers[sentiment])[index])
    body = rng.choice(REVIEWS.bodies[item.category, sentiment])[index]
    parts.append(body.format(p=item.noun[index]))
    if rng.random() < 0.6:
        parts.append(rng.choice(REVIEWS.closers[sentiment])[index])
    return ("" if lang == "zh" else " ").join(parts)


class _EventLog:
    """Collects events as they are simulated; ids are given once all are sorted by time."""

    def __init__(self) -> None:
        self._events: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(
        self,
        when: datetime,
        shopper: _Shopper,
        kind: str,
        context: dict[str, str],
        *,
        item: _Item | None = None,
        value: float | None = None,
        text: str = "",
    ) -> None:
        record = {
            "user": shopper.external_id,
            "item": item.external_id if item else None,
            "kind": kind,
            "value": value,
            "text": text,
            "context": context,
        }
        self._events.append((when, len(self._events), record))

    def finish(self) -> list[dict[str, Any]]:
        ordered = sorted(self._events, key=lambda event: (event[0], event[1]))
        return [
            {
                "event_id": f"demo-{number:06d}",
                **record,
                "occurred_at": when.astimezone(UTC).isoformat(timespec="seconds"),
            }
            for number, (when, _, record) in enumerate(ordered, start=1)
        ]


class _Session:
    """One visit by one shopper: a clock that moves forward with every event."""

    def __init__(
        self,
        rng: random.Random,
        log: _EventLog,
        shopper: _Shopper,
        start: datetime,
        sid: str,
        device: str | None = None,
    ):
        self.rng = rng
        self.log = log
        self.shopper = shopper
        self.clock = start
        self.sid = sid
        if device is None:  # usually their favourite device
            device = shopper.device if rng.random() < 0.85 else rng.choice(("mobile", "desktop"))
        self.device = device

    def emit(self, kind: str, page: str, pause: tuple[int, int] = (2, 20), **fields: Any) -> None:
        """Record an event now, then let some seconds pass."""
        context = {"device": self.device, "page": page, "session": self.sid}
        self.log.add(self.clock, self.shopper, kind, context, **fields)
        self.clock += timedelta(seconds=self.rng.randint(*pause))


def _browse(
    rng: random.Random, session: _Session, by_category: dict[str, list[_Item]], now: datetime
) -> None:
    """Maybe a search, a handful of views with some clicks and carts, then checkout."""
    shopper = session.shopper
    query: Query | None = None
    if rng.random() < shopper.search_rate:
        query = rng.choice(shopper.persona.queries)
        text = query.text[0] if shopper.lang == "zh" else query.text[1]
        session.emit("search", "search", text=text)
    seen: set[str] = set()
    carted: list[_Item] = []
    slugs, weights = list(shopper.categories), list(shopper.categories.values())
    for _ in range(rng.randint(2, 8)):
        keywords: tuple[str, ...] = ()
        if query is not None and rng.random() < 0.7:
            slug, keywords, page = query.category, query.keywords, "search"
        elif rng.random() >= EXPLORATION_RATE:
            slug = rng.choices(slugs, weights=weights, k=1)[0]
            page = rng.choice(("home", "category", "category", "recommendation"))
        else:
            slug = rng.choice(CATEGORIES).slug
            page = rng.choice(("home", "recommendation"))
        item = _pick(rng, by_category[slug], shopper, keywords, seen)
        seen.add(item.external_id)
        liked = shopper.likes(item)
        session.emit("view", page, item=item, pause=(3, 40))
        if rng.random() < (0.45 if liked else 0.22):
            session.emit("click", page, item=item, pause=(15, 180))
            if liked and rng.random() < 0.1:
                session.emit("like", "item", item=item)
                if rng.random() < 0.15:
                    session.emit("share", "item", item=item)
            elif not liked and rng.random() < 0.3:
                session.emit("dislike", "item", item=item)
            if rng.random() < (0.32 if liked else 0.1):
                session.emit("cart", "item", item=item)
                carted.append(item)
        elif not liked and rng.random() < 0.08:
            session.emit("dislike", page, item=item)
        session.clock += timedelta(seconds=rng.randint(10, 120))
    if carted:
        session.clock += timedelta(seconds=rng.randint(30, 300))
    for item in carted:
        if rng.random() < 0.55:
            session.emit("purchase", "checkout", item=item, pause=(3, 20))
            _follow_up(rng, session, item, now)


def _follow_up(rng: random.Random, session: _Session, item: _Item, now: datetime) -> None:
    """When the parcel arrives (1-6 days later, unless that is the future): rate, review."""
    wants_rating = rng.random() < 0.45
    wants_review = rng.random() < 0.35
    if not (wants_rating or wants_review):
        return
    later = session.clock + timedelta(days=rng.uniform(1, 6))
    if later > now - timedelta(hours=1):
        later = session.clock + timedelta(minutes=rng.randint(5, 30))
    sid = f"{session.sid}-after-{item.external_id}"  # its own short visit to the order page
    after = _Session(rng, session.log, session.shopper, later, sid, session.device)
    stars = _rating(rng, item, session.shopper)
    if wants_rating:
        after.emit("rating", "order", item=item, value=float(stars), pause=(5, 60))
    if wants_review:
        text = _review_text(rng, item, stars, session.shopper.lang)
        after.emit("review", "order", item=item, text=text, pause=(10, 60))
        if stars >= 4 and rng.random() < 0.1:
            after.emit("share", "order", item=item)


def _build_behaviours(
    rng: random.Random, items: list[_Item], shoppers: list[_Shopper], now: datetime
) -> list[dict[str, Any]]:
    """Simulate every shopper's sessions over the HISTORY_DAYS before ``now``."""
    by_category: dict[str, list[_Item]] = {category.slug: [] for category in CATEGORIES}
    for item in items:
        by_category[item.category].append(item)
    first_midnight = (now - timedelta(days=HISTORY_DAYS)).astimezone(LOCAL_TZ)
    first_midnight = first_midnight.replace(hour=0, minute=0, second=0, microsecond=0)
    log = _EventLog()
    for shopper in shoppers:
        # Day 0 starts before the window and the last day may run into ``now``: skip both.
        days = sorted(rng.sample(range(1, HISTORY_DAYS - 1), shopper.sessions))
        for number, day in enumerate(days, start=1):
            hour = rng.choices(SESSION_HOURS, weights=SESSION_HOUR_WEIGHTS, k=1)[0]
            start = first_midnight + timedelta(days=day, hours=hour, seconds=rng.randint(0, 3599))
            sid = f"{shopper.external_id}-s{number:02d}"
            _browse(rng, _Session(rng, log, shopper, start, sid), by_category, now)
    return log.finish()


def generate(seed: int = DEFAULT_SEED, now: datetime | None = None) -> DemoData:
    """Build the demo shop's items, users and behaviours.

    The result depends only on ``seed`` and ``now``.  ``now`` defaults to the current UTC
    time rounded down to the hour; a naive ``now`` is taken to be UTC.  Every behaviour
    happens in the ``HISTORY_DAYS`` days before ``now``.
    """
    if now is None:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    rng = random.Random(seed)
    items = _build_items(rng)
    shoppers = _build_users(rng)
    behaviours = _build_behaviours(rng, items, shoppers, now)
    return DemoData(
        items=[item.record for item in items],
        users=[shopper.record for shopper in shoppers],
        behaviours=behaviours,
    )


def write_jsonl(data: DemoData, directory: Path) -> dict[str, Path]:
    """Write items.jsonl, users.jsonl and behaviours.jsonl (UTF-8) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in (
        ("items", data.items),
        ("users", data.users),
        ("behaviours", data.behaviours),
    ):
        path = directory / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[name] = path
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """Write the demo shop as JSONL: ``python -m recommender.demo.catalogue DIRECTORY``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    for name, path in write_jsonl(generate(seed=args.seed), args.directory).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
