import os

import pytest

from generator.config.schema import BACKBONES, VelaTarget
from generator.engines.tflite_file import read_tflite
from generator.engines.vela import compile_for_target
from generator.errors import UserError

U55_128 = VelaTarget("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_runs_entirely_on_the_npu(small_tflite, tmp_path, backbone):
    path = tmp_path / "small.tflite"
    path.write_bytes(small_tflite(backbone))
    result = compile_for_target(
        tflite_path=path, target=U55_128, optimise="Performance", output_dir=tmp_path / "vela"
    )
    assert result.cpu_operators == 0 and result.cpu_operator_names == ()
    assert result.npu_operators == len(result.layers) > 10
    assert result.compiled_operators == {"ethos-u": 1}  # one NPU command stream, nothing else
    assert result.vela_tflite_bytes == os.path.getsize(result.tflite_path)
    assert result.sram_kib > 0 and result.flash_kib > 0
    assert result.inference_time_ms > 0 and result.cycles > 0 and result.macs > 0
    assert result.inferences_per_second == pytest.approx(1000 / result.inference_time_ms, rel=1e-3)
    assert result.macs == sum(layer.macs for layer in result.layers)


def test_settings_reach_vela_and_come_back_from_its_summary(small_tflite, tmp_path):
    path = tmp_path / "small.tflite"
    path.write_bytes(small_tflite("mobilenet_v1"))
    target = VelaTarget("ethos-u55-64", "Ethos_U55_Deep_Embedded", "Shared_Sram")
    fast = compile_for_target(
        tflite_path=path, target=target, optimise="Performance", output_dir=tmp_path / "fast"
    )
    small = compile_for_target(
        tflite_path=path, target=target, optimise="Size", output_dir=tmp_path / "small"
    )
    for result in (fast, small):
        assert (result.system_config, result.memory_mode) == (
            target.system_config,
            target.memory_mode,
        )
        assert result.core_clock_mhz == 200
        assert result.flash_kib > 0
    assert small.sram_kib <= fast.sram_kib  # Size minimises SRAM


def test_cpu_fallback_is_detected_and_named(tmp_path):
    """A float model: Vela 'succeeds' with every operator on the CPU; we must see that."""
    import keras
    import tensorflow as tf

    image = keras.Input((16, 16, 3), batch_size=1)
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(image))
    model = keras.Model(image, keras.layers.Dense(3)(features))
    path = tmp_path / "float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    result = compile_for_target(
        tflite_path=path, target=U55_128, optimise="Performance", output_dir=tmp_path / "vela"
    )
    operators = read_tflite(path.read_bytes()).operators
    assert result.npu_operators == 0
    assert result.cpu_operators == len(operators) == 3
    assert [name.split(" ")[0] for name in result.cpu_operator_names] == [
        "Conv2D",
        "Mean",
        "FullyConnected",
    ]
    assert "ethos-u" not in result.compiled_operators


def test_vela_errors_become_user_errors(small_tflite, tmp_path):
    path = tmp_path / "small.tflite"
    path.write_bytes(small_tflite("mobilenet_v1"))
    target = VelaTarget("ethos-u55-128", "No_Such_System", "Shared_Sram")
    with pytest.raises(UserError, match="Vela could not compile for ethos-u55-128"):
        compile_for_target(
            tflite_path=path, target=target, optimise="Performance", output_dir=tmp_path / "vela"
        )
