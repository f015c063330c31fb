"""The synthetic scene generator: food items drawn with exact masks (:mod:`~detseg.data.synth.food_items`,
:mod:`~detseg.data.synth.textures`), placed into scenes (:mod:`~detseg.data.synth.scene`) or composited onto real
photos with look-alike distractors and real cut-outs (:mod:`~detseg.data.synth.composite`,
:mod:`~detseg.data.synth.distractors`, :mod:`~detseg.data.synth.real_items`), written as datasets
(:mod:`~detseg.data.synth.generate`) and videos with track ids (:mod:`~detseg.data.synth.synth_video`).

The dataset formats it writes are its parent's (:mod:`detseg.data`), which never imports this package."""
