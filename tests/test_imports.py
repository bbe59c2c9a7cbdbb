"""The layering rule: layers < models < methods < CLI/demo. Importing the layers, the CNN
or the captioner must not load the methods, the command line or the demo."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loaded_after(statement):
    code = (f"import sys; {statement}; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'gradscope')))")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return out.stdout.split()


def test_models_do_not_load_methods_cli_or_demo():
    mods = loaded_after("import gradscope.cnn, gradscope.layers, gradscope.captioning")
    assert "gradscope.cnn.model" in mods and "gradscope.captioning" in mods
    upper = [m for m in mods if m.split(".")[1:2] and m.split(".")[1] in ("methods", "cli", "demo")]
    assert upper == [], upper


def test_interface_imports_only_errors():
    assert loaded_after("import gradscope.interface") == ["gradscope", "gradscope.errors", "gradscope.interface"]
