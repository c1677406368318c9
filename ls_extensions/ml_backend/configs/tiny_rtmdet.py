# A tiny RTMDet for tests and demos: trains on CPU in well under a minute on 128x128 images.
#
# Shipped whole (no `_base_ = 'mmdet::...'`, which needs pkg_resources), BN instead of SyncBN,
# no pretrained init_cfg (nothing is ever downloaded). Classes match synthetic.py and the
# fish/crab projects; rename them (and num_classes) for your own labels.
default_scope = 'mmdet'

metainfo = dict(classes=('fish', 'crab'))
num_classes = 2
image_size = 128
widen = 0.25
channels = [int(256 * widen), int(512 * widen), int(1024 * widen)]
norm_cfg = dict(type='BN')
act_cfg = dict(type='SiLU', inplace=True)

model = dict(
    type='RTMDet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=False,
        pad_size_divisor=32,
        batch_augments=None,
    ),
    backbone=dict(
        type='CSPNeXt',
        arch='P5',
        expand_ratio=0.5,
        deepen_factor=0.167,
        widen_factor=widen,
        channel_attention=True,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
    ),
    neck=dict(
        type='CSPNeXtPAFPN',
        in_channels=channels,
        out_channels=channels[0],
        num_csp_blocks=1,
        expand_ratio=0.5,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
    ),
    bbox_head=dict(
        type='RTMDetSepBNHead',
        num_classes=num_classes,
        in_channels=channels[0],
        stacked_convs=2,
        feat_channels=channels[0],
        anchor_generator=dict(type='MlvlPointGenerator', offset=0, strides=[8, 16, 32]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        with_objectness=False,
        exp_on_reg=False,
        share_conv=True,
        pred_kernel_size=1,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
    ),
    train_cfg=dict(
        assigner=dict(type='DynamicSoftLabelAssigner', topk=13), allowed_border=-1, pos_weight=-1, debug=False
    ),
    test_cfg=dict(
        nms_pre=1000, min_bbox_size=0, score_thr=0.001, nms=dict(type='nms', iou_threshold=0.6), max_per_img=100
    ),
)

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='Pad', size=(image_size, image_size), pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(batch_size=8, dataset=dict(type='CocoDataset', metainfo=metainfo, pipeline=test_pipeline))

# read by the ls_extensions MMDetection adapter's fit(); override with --option key=value
ls_train = dict(
    iters=200,
    batch_size=8,
    lr=0.004,
    weight_decay=0.05,
    warmup_iters=20,
    scale=(image_size, image_size),
    flip=0.5,
    seed=0,
)
