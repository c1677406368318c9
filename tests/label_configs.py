"""Label configs the tests use (the shapes our users label)."""

IMAGE_BOXES = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="fish"/>
    <Label value="crab"/>
  </RectangleLabels>
</View>"""

VIDEO_TRACKING = """<View>
  <Labels name="videoLabels" toName="video" allowEmpty="true">
    <Label value="fish"/>
    <Label value="crab"/>
  </Labels>
  <Video name="video" value="$video" framerate="25.0"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""
