"""ament_python package definition for depth_any_view (colcon on a robot, pip in a venv)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "depth_any_view"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + package_name + "/config/examples", glob("config/examples/*.yaml")),
        ("share/" + package_name + "/rviz", glob("rviz/*.rviz")),
    ],
    package_data={package_name: ["weights/*.safetensors", "weights/*.yaml", "weights/*.json"]},
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="depth_any_view developers",
    maintainer_email="depth-any-view@users.noreply.github.com",
    description="Multi-view depth and 3D occupancy from six calibrated cameras for ROS 2.",
    license="MIT",
    extras_require={"test": ["pytest"]},  # tests_require is gone from setuptools 72
    entry_points={
        "console_scripts": [
            "depth_any_view_node = depth_any_view.ros.node:main",
            "depth-any-view = depth_any_view.cli:main",
        ],
    },
)
