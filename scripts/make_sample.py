#!/usr/bin/env python
"""Write the project's bundled sample of fake upstream data.

Usage::

    python -m scripts.make_sample [--out DIR]

``DIR`` defaults to the package's bundled sample, ``svitpipe/sample/``.  The script removes and
rewrites ``DIR/svit/`` (SVIT source root, Hub zip layout),
``DIR/internvl-sa1b-caption/`` (the four JSONL caption files), ``DIR/sa1b/``
(the SA-1B image tars) and ``DIR/README.md``; nothing else in ``DIR`` is
touched.  Output is byte-for-byte deterministic.

All text and images below are synthetic and were written for this project:
the pictures are random coloured shapes with a printed label, and the
conversations and captions describe imaginary scenes that the labels name.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
from pathlib import Path

from svitpipe.sample import SAMPLE_DIR
from svitpipe.testing.fake_upstream import (
    SA1B_CAPTION_FILES,
    SVIT_ANNOTATION_STEMS,
    SVIT_IMAGE_ZIPS,
    draw_jpeg,
    sa1b_annotation_json,
    write_sa1b_captions_source,
    write_sa1b_images_source,
    write_svit_source,
)

DEFAULT_OUT = SAMPLE_DIR
SVIT_DIR = "svit"
CAPTIONS_DIR = "internvl-sa1b-caption"
SA1B_DIR = "sa1b"
README = "README.md"


# ==========================================================================
# SVIT: images
# ==========================================================================

# (image_id, Visual Genome folder, width, height, label printed on the image)
SVIT_IMAGES = [
    (1, "VG_100K", 200, 150, "street corner"),
    (2, "VG_100K", 120, 180, "bookshelf"),
    (3, "VG_100K", 128, 128, "dinner table"),
    (10, "VG_100K", 240, 160, "beach"),
    (2354786, "VG_100K", 180, 120, "park"),
    (2368312, "VG_100K", 135, 180, "giraffe"),
    (2400001, "VG_100K_2", 220, 140, "train"),
    (2401385, "VG_100K_2", 150, 150, "cat"),
    (2405722, "VG_100K_2", 160, 240, "clock tower"),
    (2412960, "VG_100K_2", 200, 130, "kitchen"),
]


def conv(*pairs: tuple[str, str], topic: str | None = None) -> dict:
    """One SVIT conversation from (user, gpt) pairs, with an optional topic."""
    content = []
    for question, answer in pairs:
        content.append({"from": "user", "value": question})
        content.append({"from": "gpt", "value": answer})
    out: dict = {"content": content}
    if topic is not None:
        out["topic"] = topic
    return out


# ==========================================================================
# SVIT: conversation (every image, 2-3 conversations, some with a topic)
# ==========================================================================

CONVERSATION = {
    1: [
        conv(
            ("What is the weather like in this picture?",
             "It looks like a light rain is falling. The pavement is shiny and wet, and the man "
             "walking past the shop holds an open black umbrella over his head."),
            ("Is the man dressed for that weather?",
             "Mostly, yes. Besides the umbrella he wears a long dark coat, which should keep "
             "him reasonably dry."),
            topic="Weather and clothing",
        ),
        conv(
            ("What kind of business is on the corner?",
             "A small grocery shop. Crates of apples and oranges are stacked under the awning "
             "by the door, and a sign in the window shows that it is open."),
            ("Which vehicle is parked in front of it?",
             "A red hatchback is parked along the curb in front of the shop."),
            ("Is the car blocking the entrance?",
             "No. It stands a little to the left of the door, so customers can still walk in "
             "and out freely."),
        ),
    ],
    2: [
        conv(
            ("What is the tallest piece of furniture in the room?",
             "A wooden bookshelf that reaches almost up to the ceiling."),
            ("Is there anywhere to sit?",
             "Yes, a grey armchair stands beside the bookshelf, turned slightly toward the "
             "lamp."),
            topic="Furniture",
        ),
        conv(
            ("Is there anything on the shelves besides books?",
             "A small potted plant sits on the middle shelf, and two framed photographs lean "
             "against the books on the top shelf."),
            ("What colour is the lamp shade?",
             "The lamp on top of the shelf has a green shade."),
            ("Does the room look tidy?",
             "Fairly tidy. Most books stand in neat rows, although a few lie flat on the "
             "bottom shelf."),
            topic="Decoration",
        ),
    ],
    3: [
        conv(
            ("What food is on the table?",
             "There is a plate of pasta with tomato sauce in the middle of the table, with a "
             "basket of bread next to it."),
            ("What drinks are there?",
             "Two white cups, one on each side of the plate. They probably hold coffee or "
             "tea."),
        ),
        conv(
            ("Which condiments can you see?",
             "A salt shaker, a pepper mill and a small glass bottle of olive oil, grouped "
             "together near the far edge of the table."),
            ("Is the table set for one person or more?",
             "It looks set for two: there are two cups and two folded napkins, although only "
             "one plate of food has been served so far."),
            topic="Table setting",
        ),
        conv(
            ("What is the table made of?",
             "It appears to be a wooden table with a visible grain and no tablecloth."),
            ("Does the meal look finished?",
             "No, the pasta is still piled high on the plate, so the meal has only just "
             "started or has not started yet."),
        ),
    ],
    10: [
        conv(
            ("What are the people doing on the beach?",
             "Two people are carrying surfboards toward the water, while a family sits under "
             "a striped umbrella further up the sand."),
            ("How are the waves?",
             "The waves are small but steady, with white foam breaking close to the shore, "
             "which suits beginners."),
            topic="Beach activities",
        ),
        conv(
            ("What colours are the surfboards?",
             "One surfboard is yellow and the other is light blue with a white stripe."),
            ("Is it a sunny day?",
             "Yes, the sky is clear and bright, and the people on the sand are wearing "
             "sunglasses and hats."),
        ),
    ],
    2354786: [
        conv(
            ("What is the dog doing?",
             "The dog is leaping into the air to catch a red frisbee."),
            ("Who threw the frisbee?",
             "Most likely the young woman standing a few metres behind the dog with her arm "
             "still stretched forward."),
            ("What breed might the dog be?",
             "With its black and white coat and medium build, it resembles a border collie, "
             "a breed known for loving this kind of game."),
            topic="Playing fetch",
        ),
        conv(
            ("What else is in the park?",
             "There is a wooden bench under a large oak tree and a paved path that curves "
             "across the grass."),
            ("Is the park crowded?",
             "Not at all. Apart from the woman and her dog, only one person is visible, sitting "
             "on the bench and reading."),
        ),
    ],
    2368312: [
        conv(
            ("What animal is in the picture?",
             "A giraffe, standing next to a tall acacia tree."),
            ("What is it doing?",
             "It is stretching its long neck up to eat leaves from the upper branches of the "
             "tree."),
            topic="Animal behaviour",
        ),
        conv(
            ("Where was this photo probably taken?",
             "The dry grass and scattered acacia trees suggest an African savanna, or a "
             "wildlife park designed to look like one."),
            ("Are there other animals around?",
             "None are visible in this frame; the giraffe is alone by the tree."),
        ),
    ],
    2400001: [
        conv(
            ("What is happening at the platform?",
             "A blue and white passenger train has stopped at the platform, and several "
             "passengers are stepping on and off through the open doors."),
            ("Is there a way to see when the next train leaves?",
             "Yes, a digital departure board hangs above the platform, near the station "
             "clock."),
            topic="Train station",
        ),
        conv(
            ("What are the passengers carrying?",
             "One woman pulls a small suitcase on wheels, and a man has a backpack over one "
             "shoulder."),
            ("Is the platform covered?",
             "Yes, a metal roof supported by green pillars runs along the length of the "
             "platform."),
            ("Does the station look busy?",
             "Moderately busy. There are people near the doors, but plenty of open space "
             "further along the platform."),
        ),
    ],
    2401385: [
        conv(
            ("Where is the cat sitting?",
             "On a windowsill, with its body facing the glass and its tail hanging over the "
             "edge."),
            ("What is it looking at?",
             "Something outside the window, perhaps birds in the tree that is visible through "
             "the glass."),
            topic="Pets at home",
        ),
        conv(
            ("What colour is the cat?",
             "It is a ginger tabby with darker orange stripes and a white chest."),
            ("Is there anything else on the windowsill?",
             "A small cactus in a clay pot stands at the other end of the sill."),
        ),
        conv(
            ("What time of day does it seem to be?",
             "The warm, low light coming through the window suggests late afternoon."),
            ("Does the cat look relaxed?",
             "Alert rather than relaxed: its ears point forward and its eyes are fixed on the "
             "view."),
        ),
    ],
    2405722: [
        conv(
            ("What is the main subject of the photo?",
             "A tall stone clock tower with a pointed roof, seen from below against a pale "
             "sky."),
            ("What time does the clock show?",
             "The hands point to roughly ten past three."),
            topic="Architecture",
        ),
        conv(
            ("What material is the tower built from?",
             "It appears to be built from light grey stone blocks, with darker stone around "
             "the clock face and the windows."),
            ("Are there any birds?",
             "Yes, a few pigeons are perched on the ledge just below the clock."),
        ),
    ],
    2412960: [
        conv(
            ("What is cooking on the stove?",
             "Two pots sit on the stove. The larger one is steaming, so something is being "
             "boiled, possibly pasta or soup."),
            ("Is anyone in the kitchen?",
             "No person is visible; the kitchen is empty apart from the cooking pots."),
            topic="Cooking",
        ),
        conv(
            ("What is hanging on the wall?",
             "A row of utensils hangs from a rail on the wall: a ladle, a whisk and a "
             "spatula."),
            ("What colour are the cabinets?",
             "The cabinets are painted pale blue with round silver handles."),
        ),
    ],
}


# ==========================================================================
# SVIT: complex_reasoning (most images, one conversation of 2-4 QA pairs)
# ==========================================================================

COMPLEX_REASONING = {
    1: [conv(
        ("Why might the shopkeeper keep the fruit crates under the awning?",
         "The awning shelters the fruit from the rain while keeping it visible to people "
         "walking by. On a wet day this protects the produce and still works as a display "
         "that draws customers inside."),
        ("What should the driver of the red car be careful about when pulling away?",
         "The road is wet, so the tyres have less grip and braking distances are longer. "
         "Pedestrians holding umbrellas may also have a limited view of traffic, so the "
         "driver should move off slowly and watch the crossing."),
    )],
    2: [conv(
        ("Why is the lamp placed near the armchair?",
         "The chair and lamp together form a reading corner: the lamp throws light onto the "
         "seat, so someone sitting there can read a book taken straight from the shelf."),
        ("What might be a risk of keeping the plant on the bookshelf?",
         "Watering it could spill water onto the books next to it and damage their pages or "
         "covers. A saucer under the pot, or a spot away from the books, would be safer."),
        ("What does the room suggest about its owner?",
         "The full shelves and the comfortable reading corner suggest someone who reads a "
         "lot and enjoys spending quiet time at home, while the plant and photographs show "
         "some care for a homely atmosphere."),
    )],
    3: [conv(
        ("Why is only one plate served if the table is set for two?",
         "The second person may not have arrived yet, or their food is still being "
         "prepared. The extra cup and napkin show that someone else is expected."),
        ("Why would the oil be kept next to the salt and pepper?",
         "All three are used to season food at the table, so keeping them together makes "
         "them easy to pass around and easy to clear away after the meal."),
    )],
    2354786: [conv(
        ("Why is a frisbee a good toy for this dog?",
         "Energetic herding breeds need a lot of exercise and like to chase moving "
         "objects. A frisbee flies far and slowly enough for the dog to track and catch it, "
         "which gives it both running and a mental challenge."),
        ("Is the park a safe place for this game?",
         "Mostly. The open grass gives plenty of room and there are few people around, so "
         "the dog is unlikely to collide with anyone. The owner should still keep throws "
         "away from the path and the bench."),
        ("What might happen next?",
         "After the catch the dog will probably run back to the woman to have the frisbee "
         "thrown again, since dogs like this rarely tire of the game quickly."),
    )],
    2368312: [conv(
        ("Why does the giraffe eat from the top of the tree?",
         "Its long neck lets it reach leaves that most other grazing animals cannot, so the "
         "upper branches offer food with little competition."),
        ("How might the dry season affect this animal?",
         "When grass and low plants dry out, tall trees like acacias are among the few "
         "sources of fresh leaves, so the giraffe's reach becomes an even bigger advantage. "
         "It also gets much of its water from those leaves."),
    )],
    2400001: [conv(
        ("Why do passengers wait for others to get off before boarding?",
         "Letting people leave first clears space in the doorway and inside the carriage, "
         "so everyone moves faster and the train can leave on time."),
        ("What is the purpose of the roof over the platform?",
         "It protects waiting passengers from rain and sun, and keeps the platform surface "
         "drier, which lowers the risk of slipping near the edge."),
        ("How could a first-time traveller find the right train?",
         "They could check the departure board above the platform, which lists "
         "destinations and times, and compare it with the sign on the front of the train."),
        ("Why is the train painted in bright colours?",
         "Bright, contrasting colours make the train easy to see as it approaches, which "
         "helps passengers and staff on the platform stay alert and safe."),
    )],
    2405722: [conv(
        ("Why would a town build such a tall clock tower?",
         "Before people carried watches, a clock high above the rooftops let everyone in "
         "the town see the time from far away. The tower also served as a landmark and a "
         "symbol of civic pride."),
        ("Why do pigeons gather on the ledge?",
         "The ledge is high, sheltered from the wind and out of reach of predators, which "
         "makes it a safe place for pigeons to rest and watch the square below."),
    )],
    2412960: [conv(
        ("Is it safe to leave the pots unattended?",
         "Not for long. A steaming pot can boil over and put out a gas flame or spill onto "
         "the stove, so someone should come back soon to check on it."),
        ("Why are the utensils hung on a rail?",
         "Hanging them keeps them within reach of the stove while cooking and frees drawer "
         "space. It also lets them dry in the air after washing."),
        ("What meal might be in preparation?",
         "With one large pot boiling and a smaller one beside it, the cook could be making "
         "pasta with a sauce warming in the second pot."),
    )],
}


# ==========================================================================
# SVIT: detail_description (every image, one instruction + one answer)
# ==========================================================================

# The 2405722 answer reproduces a known upstream problem: an apology that the
# message was empty instead of a description.  It is kept on purpose.
EMPTY_MESSAGE_APOLOGY = (
    "It seems like your message is empty. I'm sorry, but there is nothing for me to respond "
    "to yet. Please send your question or the details you would like me to describe."
)

DETAIL_DESCRIPTION = {
    1: ("Describe this picture thoroughly.",
        "The image shows a street corner on a rainy day. A small grocery shop occupies the "
        "corner building, with a striped awning over its entrance and crates of apples and "
        "oranges stacked beneath it. A sign in the shop window announces that it is open. In "
        "front of the shop a red hatchback is parked at the curb. On the left, a man in a "
        "long dark coat walks along the wet pavement holding a black umbrella. A traffic "
        "light stands at the corner, and the grey sky suggests the rain will continue for a "
        "while."),
    2: ("Tell me everything you can see in this photo.",
        "This is a cosy corner of a living room. A tall wooden bookshelf filled with books "
        "dominates the scene. On its top shelf stand two framed photographs and a reading "
        "lamp with a green shade, and a small potted plant sits on the middle shelf. A few "
        "books lie flat on the bottom shelf. To the right, a grey armchair is turned toward "
        "the lamp, making the corner an inviting place to sit and read."),
    3: ("Write a detailed description of the scene.",
        "A wooden table is set for a simple meal. In the centre is a plate of pasta with "
        "tomato sauce, and a basket of bread sits beside it. Two white cups are placed on "
        "either side of the plate, each next to a folded napkin. Near the far edge of the "
        "table, a salt shaker, a pepper mill and a small bottle of olive oil are grouped "
        "together. The table has no cloth, and its wood grain is clearly visible."),
    10: ("What is going on in this image? Please be as detailed as possible.",
         "The picture captures a sunny day at the beach. Two people carry surfboards, one "
         "yellow and one light blue with a white stripe, toward the sea, where small waves "
         "break into white foam near the shore. Further up the sand, a family sits under a "
         "striped beach umbrella with towels and a cool box. The sky is clear and the sea "
         "is a deep blue near the horizon."),
    2354786: ("Give a careful, complete account of this image.",
              "A black and white dog, probably a border collie, is captured mid-leap as it "
              "catches a red frisbee in a grassy park. Behind it, a young woman stands with "
              "her arm still extended from the throw. A paved path curves through the grass, "
              "and a large oak tree shades a wooden bench where one person sits reading. The "
              "park is green and open, with plenty of space for the game."),
    2368312: ("Describe this picture thoroughly.",
              "A single giraffe stands beside a tall acacia tree on a dry, grassy plain. It "
              "stretches its neck upward to pull leaves from the highest branches. Its coat "
              "shows the typical pattern of brown patches separated by light lines. The "
              "surrounding grass is golden and short, and a few more acacia trees can be "
              "seen in the distance under a hazy sky."),
    2400001: ("Write a detailed description of the scene.",
              "A blue and white passenger train stands at a covered station platform. Its "
              "doors are open, and passengers are getting on and off: a woman pulls a small "
              "wheeled suitcase, and a man carries a backpack on one shoulder. A metal roof "
              "supported by green pillars stretches along the platform, and a digital "
              "departure board hangs beneath it near a round station clock."),
    2401385: ("Tell me everything you can see in this photo.",
              "A ginger tabby cat with a white chest sits on a windowsill, looking out "
              "through the glass. Its ears point forward and its tail hangs over the edge of "
              "the sill. Outside, the branches of a tree are visible. At the other end of "
              "the sill there is a small cactus in a clay pot, and warm afternoon light "
              "falls across the scene."),
    2405722: ("Give a careful, complete account of this image.", EMPTY_MESSAGE_APOLOGY),
    2412960: ("What is going on in this image? Please be as detailed as possible.",
              "The photo shows a tidy kitchen with pale blue cabinets and round silver "
              "handles. Two pots sit on the stove, and the larger one is giving off steam. "
              "Along the wall above the counter hangs a rail with a ladle, a whisk and a "
              "spatula. There is no one in the room, but the steaming pot suggests that "
              "someone is in the middle of cooking."),
}


# ==========================================================================
# SVIT: referring_qa (8 images, 3-5 QA pairs, <st>phrase<ed> [x1, y1, x2, y2])
# ==========================================================================

REFERRING_QA = {
    # hard cases: text in brackets that is not a box, irregular spacing inside
    # a box, a QA pair with no references at all
    1: [conv(
        ("What does <st>the sign<ed> [0.62, 0.18, 0.8, 0.3] in the window say?",
         "<st>The sign<ed> [0.62, 0.18, 0.8, 0.3] reads [OPEN], so the shop is open for "
         "business."),
        ("Who is holding <st>the umbrella<ed> [0.1,0.2 , 0.3,  0.4]?",
         "<st>A man in a dark coat<ed> [0.12, 0.3, 0.3, 0.95] is holding it as he walks past "
         "the shop."),
        ("Where is <st>the red car<ed> [0.35, 0.55, 0.78, 0.9] parked?",
         "It is parked at the curb in front of <st>the grocery shop<ed> [0.4, 0.05, 1.0, 0.6]."),
        ("Is it raining?",
         "Very likely. The pavement looks wet and people are using umbrellas."),
    )],
    # hard cases: several boxes for one phrase, a phrase containing commas,
    # integer coordinates
    3: [conv(
        ("How many cups are on the table?",
         "There are <st>two cups<ed> [0.1, 0.5, 0.2, 0.7], [0.6, 0.5, 0.7, 0.7] on the "
         "table."),
        ("What is grouped near the far edge of <st>the table<ed> [0, 0.25, 1, 0.9]?",
         "The <st>salt, pepper, and oil<ed> [0.38, 0.27, 0.62, 0.4] are grouped together "
         "there."),
        ("What is on <st>the plate<ed> [0.27, 0.45, 0.55, 0.75]?",
         "A serving of pasta with tomato sauce."),
    )],
    10: [conv(
        ("What are <st>the two people<ed> [0.2, 0.35, 0.32, 0.85], [0.4, 0.38, 0.5, 0.86] "
         "carrying?",
         "They are carrying <st>surfboards<ed> [0.15, 0.3, 0.25, 0.8], [0.45, 0.33, 0.56, "
         "0.82] toward the water."),
        ("Where is the family sitting?",
         "<st>The family<ed> [0.7, 0.45, 0.95, 0.7] sits under <st>a striped umbrella<ed> "
         "[0.68, 0.2, 0.98, 0.5] higher up the beach."),
        ("Describe <st>the sea<ed> [0, 0, 1, 0.35].",
         "It is calm and blue, with small waves breaking near the shore."),
    )],
    # hard case: no space between <ed> and the box
    2354786: [conv(
        ("What is <st>the dog<ed>[0.2, 0.3, 0.5, 0.8] doing?",
         "<st>The dog<ed>[0.2, 0.3, 0.5, 0.8] is jumping to catch <st>a red frisbee<ed> "
         "[0.38, 0.22, 0.5, 0.32]."),
        ("Who threw it?",
         "Probably <st>the young woman<ed> [0.62, 0.25, 0.75, 0.9] standing behind the "
         "dog."),
        ("Is anyone else in the park?",
         "Yes, <st>a person<ed> [0.82, 0.4, 0.92, 0.7] is sitting on <st>the bench<ed> "
         "[0.78, 0.5, 0.99, 0.75] under <st>the oak tree<ed> [0.75, 0.0, 1.0, 0.6]."),
        ("What time of year might it be?",
         "The grass is green and the tree is in full leaf, so probably late spring or "
         "summer."),
    )],
    2368312: [conv(
        ("What is <st>the giraffe<ed> [0.15, 0.1, 0.6, 0.98] eating?",
         "It is eating leaves from <st>the acacia tree<ed> [0.45, 0.0, 0.98, 0.7]."),
        ("How tall is the tree compared with the giraffe?",
         "The crown of <st>the tree<ed> [0.45, 0.0, 0.98, 0.7] is roughly level with "
         "<st>the giraffe's head<ed> [0.38, 0.1, 0.55, 0.22]."),
        ("What covers the ground?",
         "<st>Dry golden grass<ed> [0, 0.75, 1, 1] covers the ground."),
    )],
    2400001: [conv(
        ("Which way is <st>the woman with the suitcase<ed> [0.3, 0.4, 0.42, 0.92] going?",
         "She is walking toward <st>the open door<ed> [0.45, 0.35, 0.55, 0.85] of "
         "<st>the train<ed> [0.05, 0.2, 0.95, 0.88]."),
        ("Where can passengers check departure times?",
         "On <st>the departure board<ed> [0.6, 0.05, 0.85, 0.15] hanging under the roof."),
        ("What holds up the roof?",
         "<st>Green pillars<ed> [0.02, 0.0, 0.06, 0.95], [0.9, 0.0, 0.94, 0.95] placed "
         "along the platform."),
        ("Is the train moving?",
         "No, it is standing still with its doors open while people board."),
    )],
    2401385: [conv(
        ("What is <st>the cat<ed> [0.25, 0.3, 0.65, 0.9] sitting on?",
         "It is sitting on <st>the windowsill<ed> [0.0, 0.78, 1.0, 0.92]."),
        ("What is at the other end of the sill?",
         "<st>A small cactus in a clay pot<ed> [0.78, 0.6, 0.92, 0.82]."),
        ("What can be seen through <st>the window<ed> [0.05, 0.05, 0.95, 0.78]?",
         "The branches of <st>a tree<ed> [0.5, 0.1, 0.9, 0.6] outside."),
    )],
    2412960: [conv(
        ("Which pot is steaming, <st>the large pot<ed> [0.3, 0.42, 0.5, 0.7] or <st>the "
         "small pot<ed> [0.55, 0.5, 0.68, 0.7]?",
         "<st>The large pot<ed> [0.3, 0.42, 0.5, 0.7] is the one giving off steam."),
        ("What hangs on <st>the rail<ed> [0.1, 0.08, 0.6, 0.12]?",
         "<st>A ladle, a whisk, and a spatula<ed> [0.15, 0.1, 0.52, 0.38] hang from it."),
        ("What colour are the cabinets?",
         "<st>The cabinets<ed> [0.0, 0.55, 0.25, 1.0], [0.72, 0.55, 1.0, 1.0] are pale "
         "blue."),
        ("Is the stove gas or electric?",
         "It is hard to tell from this angle, but there is no visible flame."),
        ("Where is <st>the stove<ed> [0.28, 0.6, 0.7, 1]?",
         "It stands in the middle of the counter, between the two groups of cabinets."),
    )],
}


# Upstream oddities the builder must keep (the upstream text is the data; what the project derives is a
# view): each becomes a row that records it and a flag the build report counts.

# One more conversation for image 2401385 whose references do not all follow the rules: a box with 3 numbers
# (unparsed), a box below 0 and above 1 (out-of-range), an inverted box, a line break between <ed> and its box (fine).
REFERRING_ODD_CONVERSATION = conv(
    ("Which objects are near <st>the lamp<ed> [0.1, 0.2, 0.3] on the sill?",
     "<st>The shadow of the cat<ed> [-0.05, 0.8, 0.4, 1.02] falls across <st>the rug<ed> "
     "[0.7, 0.9, 0.2, 0.95], and <st>the curtain<ed>\n[0.0, 0.0, 0.2, 0.8] hangs on the left."),
)
REFERRING_ODD_IMAGE = 2401385


def with_oddities(stem: str, records: list[dict]) -> list[dict]:
    """The subset's records with the oddities real upstream files show: undeclared keys at record, conversation and
    turn level, an image_id written as digits, a second record for one image (merged into its row), a topic where
    the schema has none, and referring turns whose references break the rules."""
    records = [dict(record) for record in records]
    if stem == "conversation":
        records[0]["source"] = "vg-scene-graph"
        first_turn = records[1]["conversations"][0]["content"][0]
        records[1]["conversations"][0]["content"][0] = {**first_turn, "lang": "en"}
        records.append({"image_id": records[2]["image_id"], "conversations": [conv(
            ("What else can be said about the scene?",
             "It is a quiet moment; nothing in the picture suggests hurry."),
            topic="Second record for the same image",
        )]})
    elif stem == "complex_reasoning":
        records[0]["conversations"] = [{**records[0]["conversations"][0], "topic": "Reasoning topic"},
                                       *records[0]["conversations"][1:]]
    elif stem == "detail_description":
        records[1]["image_id"] = str(records[1]["image_id"])
    elif stem == "referring_qa":
        for record in records:
            if record["image_id"] == REFERRING_ODD_IMAGE:
                record["conversations"] = [*record["conversations"], REFERRING_ODD_CONVERSATION]
    return records


# ==========================================================================
# SA-1B images and InternVL-SA-1B-Caption lines
# ==========================================================================

# tar stem -> [(global image number, width, height), ...] in numeric order;
# the written tar order is shuffled (see sa1b_tar_order).
SA1B_TARS = {
    "sa_000000": [(1, 150, 100), (2, 100, 150), (4, 160, 120), (7, 150, 100), (9, 120, 160)],
    "sa_000001": [(11187, 150, 100), (11202, 100, 150), (11234, 160, 120), (11509, 150, 100)],
    "sa_000002": [(22410, 120, 160), (22415, 150, 100), (22733, 160, 120), (22901, 150, 100)],
}
SA1B_SHUFFLE_SEED = 20230405


def single(image: str, prompt: str, caption: str) -> dict:
    """One single-image caption line."""
    return {
        "image": image,
        "conversations": [
            {"from": "human", "value": f"<image>\n{prompt}"},
            {"from": "gpt", "value": caption},
        ],
    }


def multi(images: list[str], prompt: str, caption: str) -> dict:
    """One multi-image caption line: one <image> placeholder per image."""
    header = "".join(f"Image-{i}: <image>\n" for i in range(1, len(images) + 1))
    return {
        "image": list(images),
        "conversations": [
            {"from": "human", "value": header + prompt},
            {"from": "gpt", "value": caption},
        ],
    }


# Lines interleave the three tars and do not follow tar member order;
# sa_000000/sa_4.jpg is captioned twice, by different prompts.
EN_SINGLE = [
    single("sa_000001/sa_11234.jpg", "Describe this image in detail.",
           "Rows of grapevines run across a gently sloping hillside under a clear sky. The "
           "vines are heavy with dark purple grapes, and a narrow dirt track passes between "
           "the rows. In the distance a stone farmhouse with a red tile roof stands among a "
           "few cypress trees."),
    single("sa_000000/sa_4.jpg", "Write a short caption for this picture.",
           "A market stall piled high with tomatoes, peppers and leafy greens under a "
           "canvas canopy."),
    single("sa_000002/sa_22733.jpg", "What is shown in the image? Answer in one paragraph.",
           "The image shows a cafe terrace on a narrow street. Small round tables with "
           "wicker chairs are arranged under a dark green awning, and a few customers sit "
           "with coffee cups and newspapers. Flower boxes hang from the windows above, and "
           "a chalkboard menu stands by the entrance."),
    single("sa_000000/sa_1.jpg", "Please write a detailed caption for this photo.",
           "A small harbour at low tide, with a dozen wooden fishing boats moored along a "
           "stone quay. Their hulls are painted in blue, white and red, and nets and "
           "buoys are piled on the decks. Gulls circle overhead, and whitewashed houses "
           "line the hill behind the water."),
    single("sa_000001/sa_11187.jpg", "Give a brief overview of the scene.",
           "A busy railway station hall with a high arched glass roof. Travellers with "
           "suitcases cross the concourse beneath large departure screens, and a row of "
           "ticket machines lines one wall."),
    single("sa_000000/sa_9.jpg", "Describe this image in detail.",
           "A bronze statue of a rider on horseback stands on a tall stone pedestal in the "
           "middle of a paved square. Pigeons rest on the rider's shoulders. Around the "
           "square are four-storey buildings with balconies, and a few people sit on the "
           "steps at the base of the statue."),
    single("sa_000002/sa_22410.jpg", "Summarize the content of this image.",
           "A red wooden temple gate with a curved tiled roof, framed by pine trees. Stone "
           "steps lead up through the gate toward a hall partly hidden behind it."),
    single("sa_000000/sa_2.jpg", "What do you see in this picture?",
           "A narrow alley between tall old buildings, photographed from ground level. "
           "Laundry lines stretch from window to window overhead, hung with shirts and "
           "towels, and potted plants stand beside the doorways along the cobbled lane."),
    single("sa_000001/sa_11509.jpg", "Please write a detailed caption for this photo.",
           "A city skyline at dusk seen across a wide river. Office towers with lit windows "
           "rise against an orange and violet sky, and their reflections shimmer on the "
           "water. A long bridge with glowing street lamps crosses the river on the left."),
    single("sa_000002/sa_22901.jpg", "Write a short caption for this picture.",
           "A quiet mountain village covered in fresh snow, with smoke rising from the "
           "chimneys of wooden chalets."),
    single("sa_000000/sa_7.jpg", "Describe this image in detail.",
           "A winding mountain road climbs along a steep green valley. A yellow bus is "
           "rounding one of the hairpin bends, and a low stone wall separates the road from "
           "the drop below. Snow-capped peaks are visible in the background under scattered "
           "clouds."),
    single("sa_000001/sa_11202.jpg", "What is shown in the image? Answer in one paragraph.",
           "A white lighthouse with a red band near the top stands on a rocky headland. "
           "Waves crash against the dark rocks at its base, throwing up white spray, and "
           "the sky above is overcast. A small keeper's cottage stands a short distance "
           "from the tower."),
    single("sa_000000/sa_4.jpg", "Describe this image in detail.",
           "An outdoor vegetable stall at a morning market. Wooden crates hold ripe red "
           "tomatoes, green and yellow peppers, courgettes and bunches of lettuce, each "
           "marked with a small handwritten price card. A canvas canopy shades the produce, "
           "and a set of hanging scales is fixed to one of the poles."),
    single("sa_000002/sa_22415.jpg", "Give a brief overview of the scene.",
           "Dozens of bicycles parked in long metal racks outside a brick building, with a "
           "few riders arriving and locking their bikes."),
]

ZH_SINGLE = [
    single("sa_000001/sa_11202.jpg", "请详细描述这张图片。",
           "一座白色的灯塔矗立在岩石海岬上，塔顶附近有一圈红色条纹。海浪拍打着塔底的黑色礁石，"
           "溅起白色的浪花。天空阴沉，灯塔旁边不远处有一间小小的看守人小屋。"),
    single("sa_000000/sa_1.jpg", "这张图片里有什么？",
           "这是一个退潮时的小渔港，十几艘木制渔船停靠在石砌码头边。船身漆成蓝色、白色和红色，"
           "甲板上堆着渔网和浮标。海鸥在空中盘旋，岸后的山坡上排列着白色的房屋。"),
    single("sa_000002/sa_22733.jpg", "用一段话描述图中的场景。",
           "狭窄街道上的一家咖啡馆露台。深绿色遮阳篷下摆着几张小圆桌和藤椅，几位顾客端着咖啡"
           "看报纸。楼上的窗台挂着花箱，门口立着一块写有菜单的小黑板。"),
    single("sa_000000/sa_4.jpg", "请为这张照片写一个简短的说明。",
           "早市上的一个蔬菜摊，帆布棚下堆满了番茄、辣椒和绿叶菜。"),
    single("sa_000001/sa_11509.jpg", "请详细描述这张图片。",
           "黄昏时分隔着宽阔河面望去的城市天际线。亮着灯的写字楼映衬在橙紫色的天空下，倒影在"
           "水面上闪烁。左侧一座长桥横跨河面，桥上的路灯已经亮起。"),
    single("sa_000000/sa_9.jpg", "图片中展示了什么？",
           "铺着石板的广场中央，一尊骑马人的青铜雕像立在高高的石座上，几只鸽子停在骑手的肩膀"
           "上。广场四周是带阳台的四层楼房，有几个人坐在雕像底座的台阶上休息。"),
    single("sa_000002/sa_22901.jpg", "请为这张照片写一个简短的说明。",
           "被新雪覆盖的宁静山村，木屋的烟囱里冒着炊烟。"),
]

EN_MULTI = [
    # spans two tars
    multi(["sa_000000/sa_1.jpg", "sa_000001/sa_11202.jpg"],
          "What do these two images have in common? Describe each briefly.",
          "Both pictures are set on the coast. Image-1 shows a small harbour with colourful "
          "wooden fishing boats moored along a stone quay, while Image-2 shows a white "
          "lighthouse on a rocky headland with waves breaking below it. Together they give "
          "a picture of life by the sea."),
    # spans three tars
    multi(["sa_000000/sa_4.jpg", "sa_000002/sa_22733.jpg", "sa_000001/sa_11187.jpg"],
          "Write a one-sentence caption for each image.",
          "Image-1: A market stall full of fresh tomatoes, peppers and lettuce under a canvas "
          "canopy. Image-2: A cafe terrace with round tables and wicker chairs beneath a green "
          "awning. Image-3: Travellers crossing a large station hall under an arched glass "
          "roof."),
    # all images in one tar
    multi(["sa_000002/sa_22410.jpg", "sa_000002/sa_22415.jpg"],
          "Compare the two scenes.",
          "Image-1 is calm and traditional: a red wooden temple gate surrounded by pine "
          "trees, with stone steps leading up to a hall. Image-2 is practical and modern: "
          "long racks of parked bicycles in front of a brick building. The first invites "
          "quiet contemplation, while the second is about everyday commuting."),
    # spans two tars
    multi(["sa_000001/sa_11509.jpg", "sa_000000/sa_7.jpg"],
          "Describe the differences between these images.",
          "Image-1 is an urban view: a city skyline at dusk with lit towers reflected in a "
          "river. Image-2 is rural and mountainous: a yellow bus on a winding road in a green "
          "valley with snowy peaks behind. One is defined by artificial light, the other by "
          "natural landscape in daylight."),
    # spans two tars
    multi(["sa_000000/sa_2.jpg", "sa_000000/sa_9.jpg", "sa_000002/sa_22901.jpg"],
          "Give a short description of every image.",
          "Image-1: A narrow cobbled alley with laundry hanging between the windows. "
          "Image-2: A bronze equestrian statue standing in a paved square. Image-3: A snowy "
          "mountain village with smoke rising from its chalets."),
]

ZH_MULTI = [
    multi(["sa_000000/sa_1.jpg", "sa_000001/sa_11202.jpg"],
          "这两张图片有什么共同点？请分别简要描述。",
          "两张图片都取景于海边。图1是一个小渔港，五颜六色的木制渔船停靠在石砌码头边；图2是一座"
          "立在岩石海岬上的白色灯塔，塔下浪花翻涌。两张照片共同展现了海滨生活的景象。"),
    multi(["sa_000001/sa_11234.jpg", "sa_000001/sa_11509.jpg"],
          "请比较这两张图片。",
          "图1是阳光下的乡村葡萄园，一排排葡萄藤沿山坡延伸，远处有一座红瓦石屋；图2是黄昏时的"
          "城市天际线，高楼灯火倒映在河面上。一张宁静自然，一张繁华都市。"),
    multi(["sa_000002/sa_22733.jpg", "sa_000000/sa_4.jpg", "sa_000002/sa_22901.jpg"],
          "请为每张图片写一句说明。",
          "图1：街边咖啡馆的露台，绿色遮阳篷下摆着小圆桌。图2：早市上堆满新鲜蔬菜的摊位。"
          "图3：白雪覆盖的山村，木屋烟囱冒着炊烟。"),
]


# ==========================================================================
# Building the files
# ==========================================================================

REF_PATTERN = re.compile(r"<st>(.*?)<ed>\s*((?:\[[^\[\]]*\](?:\s*,\s*(?=\[))?)+)")
BOX_PATTERN = re.compile(r"\[([^\[\]]*)\]")


def referring_boxes(text: str) -> list[tuple[str, list[tuple[float, ...]]]]:
    """(phrase, boxes) for each <st>phrase<ed> [..], [..] reference in ``text``."""
    out = []
    for match in REF_PATTERN.finditer(text):
        boxes = [
            tuple(float(v) for v in box.split(","))
            for box in BOX_PATTERN.findall(match.group(2))
        ]
        out.append((match.group(1), boxes))
    return out


def svit_records(table: dict) -> list[dict]:
    return [{"image_id": image_id, "conversations": convs} for image_id, convs in table.items()]


def svit_annotations() -> dict[str, list[dict]]:
    detail = {
        image_id: [conv(pair)] for image_id, pair in DETAIL_DESCRIPTION.items()
    }
    tables = {
        "conversation": CONVERSATION,
        "complex_reasoning": COMPLEX_REASONING,
        "detail_description": detail,
        "referring_qa": REFERRING_QA,
    }
    return {stem: with_oddities(stem, svit_records(table)) for stem, table in tables.items()}


def svit_images() -> dict[str, dict[str, bytes]]:
    images: dict[str, dict[str, bytes]] = {folder: {} for folder in SVIT_IMAGE_ZIPS}
    for image_id, folder, width, height, label in SVIT_IMAGES:
        images[folder][f"{image_id}.jpg"] = draw_jpeg(width, height, seed=image_id, label=label)
    return images


def sa1b_tar_order(stem: str) -> list[tuple[int, int, int]]:
    """The images of one tar in a fixed, non-numeric order."""
    entries = list(SA1B_TARS[stem])
    rng = random.Random(SA1B_SHUFFLE_SEED + int(stem.split("_")[1]))
    while True:
        rng.shuffle(entries)
        if entries != SA1B_TARS[stem]:
            return entries


def sa1b_tars() -> dict[str, list[tuple[str, bytes]]]:
    tars = {}
    for stem in SA1B_TARS:
        members = []
        for number, width, height in sa1b_tar_order(stem):
            members.append((f"sa_{number}.jpg", draw_jpeg(width, height, seed=number,
                                                          label=f"sa_{number}")))
            members.append((f"sa_{number}.json", sa1b_annotation_json(number, width, height)))
        tars[stem] = members
    return tars


def caption_oddities(config: str, lines: list[dict]) -> list[dict]:
    """The file's lines with the oddities the builder keeps: declared sizes that are not the image's, an
    undeclared key, and a multi-image line with a second question and answer (no single caption)."""
    lines = [dict(line) for line in lines]
    if config == "sa1b-en-single":
        lines[0].update(width=1500, height=1000)  # the sample images are small: not the real size
        lines[1]["quality"] = "high"
    elif config == "sa1b-en-multi":
        lines[0]["conversations"] = [
            *lines[0]["conversations"],
            {"from": "human", "value": "Which of the two would you rather visit?"},
            {"from": "gpt", "value": "The harbour, for its colourful boats."},
        ]
    return lines


def caption_files() -> dict[str, list[dict]]:
    tables = {"sa1b-en-single": EN_SINGLE, "sa1b-zh-single": ZH_SINGLE, "sa1b-en-multi": EN_MULTI,
              "sa1b-zh-multi": ZH_MULTI}
    return {SA1B_CAPTION_FILES[config]: caption_oddities(config, lines) for config, lines in tables.items()}


def line_images(line: dict) -> list[str]:
    image = line["image"]
    return [image] if isinstance(image, str) else list(image)


def check_content() -> None:
    """Fail loudly if the tables above stop covering what the sample promises."""
    folder_of = {image_id: folder for image_id, folder, *_ in SVIT_IMAGES}
    assert len(folder_of) == len(SVIT_IMAGES), "duplicate SVIT image id"
    for width_height in [(w, h) for _, _, w, h, _ in SVIT_IMAGES]:
        assert max(width_height) <= 240
    annotations = svit_annotations()
    for stem, records in annotations.items():
        used = {folder_of[int(r["image_id"])] for r in records}
        assert used == set(SVIT_IMAGE_ZIPS), f"{stem} does not use both image folders"
        for record in records:
            for conversation in record["conversations"]:
                roles = [turn["from"] for turn in conversation["content"]]
                assert roles == ["user", "gpt"] * (len(roles) // 2), (stem, record["image_id"])
    assert set(CONVERSATION) == set(folder_of)
    assert set(DETAIL_DESCRIPTION) == set(folder_of)
    assert [a for _, a in DETAIL_DESCRIPTION.values()].count(EMPTY_MESSAGE_APOLOGY) == 1
    for records in REFERRING_QA.values():
        for conversation in records:
            for turn in conversation["content"]:
                text = turn["value"]
                assert text.count("<st>") == text.count("<ed>")
                refs = referring_boxes(text)
                assert len(refs) == text.count("<st>"), text
                for _, boxes in refs:
                    for x1, y1, x2, y2 in boxes:
                        assert 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1, text

    in_tar = {
        f"{stem}/sa_{number}.jpg" for stem, entries in SA1B_TARS.items() for number, *_ in entries
    }
    for lines in (EN_SINGLE, ZH_SINGLE, EN_MULTI, ZH_MULTI):
        for line in lines:
            images = line_images(line)
            assert set(images) <= in_tar, images
            human = line["conversations"][0]["value"]
            assert human.count("<image>") == len(images), human
    assert {line["image"] for line in EN_SINGLE} == in_tar, "en single must caption every image"
    assert len(EN_SINGLE) == len(in_tar) + 1, "exactly one image is captioned twice"


def human_size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def readme_text(out: Path) -> str:
    """The sample's README, with every number computed from the tables."""
    annotations = svit_annotations()
    folder_counts = {folder: 0 for folder in SVIT_IMAGE_ZIPS}
    for _, folder, *_ in SVIT_IMAGES:
        folder_counts[folder] += 1

    svit_rows = []
    for stem in SVIT_ANNOTATION_STEMS:
        records = annotations[stem]
        n_conv = sum(len(r["conversations"]) for r in records)
        n_qa = sum(len(c["content"]) // 2 for r in records for c in r["conversations"])
        n_topic = sum("topic" in c for r in records for c in r["conversations"])
        svit_rows.append(
            f"| `data/{stem}.zip` | {len(records)} | {n_conv} | {n_qa} | {n_topic} |"
        )
    n_refs = sum(
        len(referring_boxes(turn["value"]))
        for r in annotations["referring_qa"]
        for c in r["conversations"]
        for turn in c["content"]
    )

    caption_rows = []
    for config, file_name in SA1B_CAPTION_FILES.items():
        lines = caption_files()[file_name]
        distinct = {p for line in lines for p in line_images(line)}
        caption_rows.append(
            f"| `{file_name}` | {config} | {len(lines)} | {len(distinct)} |"
        )
    n_spanning = sum(
        len({p.split("/")[0] for p in line_images(line)}) > 1 for line in EN_MULTI + ZH_MULTI
    )

    tar_rows = []
    for stem, entries in SA1B_TARS.items():
        order = ", ".join(f"sa_{number}" for number, *_ in sa1b_tar_order(stem))
        tar_rows.append(f"| `{stem}.tar` | {len(entries)} | {2 * len(entries)} | {order} |")

    total = sum(
        p.stat().st_size
        for name in (SVIT_DIR, CAPTIONS_DIR, SA1B_DIR)
        for p in (out / name).rglob("*")
        if p.is_file()
    )
    sizes = sorted({(w, h) for _, _, w, h, _ in SVIT_IMAGES}, key=lambda wh: wh[0] / wh[1])
    portrait = sum(w < h for w, h in sizes)
    square = sum(w == h for w, h in sizes)
    landscape = sum(w > h for w, h in sizes)
    largest = max(max(wh) for wh in sizes)

    return "\n".join([
        "# Sample upstream data",
        "",
        "A tiny fake copy of the upstream files, laid out exactly like the real ones, used by",
        "the tests and for trying the builder without downloading anything. Generated by",
        "`scripts/make_sample.py` (deterministic; do not edit by hand, rerun the script).",
        "All text and images are synthetic and were written by this project: the pictures are",
        "random coloured shapes with a printed label, and the conversations and captions",
        "describe imaginary scenes named by those labels. Nothing here comes from SVIT, Visual",
        "Genome, SA-1B or InternVL-SA-1B-Caption.",
        "",
        f"Total size of the data files: {human_size(total)}.",
        "",
        "## `svit/` (SVIT, Hub zip layout)",
        "",
        f"- `raw/images.zip`: {folder_counts['VG_100K']} JPEGs under `VG_100K/`; "
        f"`raw/images2.zip`: {folder_counts['VG_100K_2']} JPEGs under `VG_100K_2/`.",
        "- `data/<subset>.zip`: one member `<subset>.json`, a JSON array of records.",
        "",
        "| file | records (images) | conversations | QA pairs | with `topic` |",
        "|---|---|---|---|---|",
        *svit_rows,
        "",
        "Hard cases covered:",
        "",
        "- images in both `VG_100K` and `VG_100K_2`, used by every subset; each image is in",
        "  exactly one folder;",
        f"- varied sizes: {landscape} landscape, {portrait} portrait, {square} square, largest side",
        f"  {largest} px;",
        "- some `conversation` entries carry an extra `topic` key, others do not;",
        "- one `detail_description` answer is an apology that the message was empty",
        "  (a known upstream problem, kept as is);",
        f"- `referring_qa` has {n_refs} `<st>phrase<ed> [x1, y1, x2, y2]` references in both",
        "  user and gpt turns, including: several boxes for one phrase, integer coordinates",
        "  (`[0, 0.25, 1, 0.9]`), a phrase containing commas, no space between `<ed>` and the",
        "  box, irregular spacing inside a box, bracketed text that is not a box",
        "  (`reads [OPEN]`), and turns with no references at all.",
        "",
        "Upstream oddities the builder keeps (each row records it, the build report counts it):",
        "",
        "- `conversation`: a record-level key (`source`) and a turn-level key (`lang`) the",
        "  schema does not declare (kept in `upstream_extra`), and a second record for one",
        "  image (merged into that image's row, conversations in file order);",
        "- `complex_reasoning`: a `topic` where the schema has none (kept in `upstream_extra`);",
        "- `detail_description`: an `image_id` written as a string of digits;",
        f"- `referring_qa`: one more conversation for image {REFERRING_ODD_IMAGE} with a 3-number box",
        "  (`unparsed`), a box outside 0-1 (`out-of-range`), an inverted box (`inverted`) and a",
        "  line break between `<ed>` and its box.",
        "",
        "## `internvl-sa1b-caption/` (InternVL-SA-1B-Caption JSONL)",
        "",
        "| file | config | lines | distinct images |",
        "|---|---|---|---|",
        *caption_rows,
        "",
        "Hard cases covered:",
        "",
        "- single-image lines interleave the tars and follow neither numeric nor tar member",
        "  order; one image is captioned twice with different prompts;",
        "- Chinese files are raw UTF-8 (`ensure_ascii=False`);",
        f"- multi-image lines list 2-3 paths with one `<image>` per image; {n_spanning} of them",
        "  span more than one tar, the others stay inside one tar;",
        "- no `id` keys; one English single-image line declares a `width`/`height` that is not",
        "  the image's (the row keeps the real size), another has an undeclared key (`quality`);",
        "- one English multi-image line has a second question and answer (every turn is kept;",
        "  `caption` is null).",
        "",
        "## `sa1b/` (SA-1B image tars)",
        "",
        "Uncompressed USTAR tars; each `sa_<n>.jpg` is followed by its `sa_<n>.json`",
        "annotation header (no masks). Member order is shuffled, not numeric.",
        "",
        "| file | images | members | image order in the tar |",
        "|---|---|---|---|",
        *tar_rows,
        "",
    ])


def write_sample(out: Path) -> None:
    """Remove and rewrite the sample's parts under ``out``."""
    check_content()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (SVIT_DIR, CAPTIONS_DIR, SA1B_DIR):
        if (out / name).exists():
            shutil.rmtree(out / name)
    (out / README).unlink(missing_ok=True)

    write_svit_source(out / SVIT_DIR, svit_annotations(), svit_images())
    write_sa1b_captions_source(out / CAPTIONS_DIR, caption_files())
    write_sa1b_images_source(out / SA1B_DIR, sa1b_tars())
    (out / README).write_text(readme_text(out), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    write_sample(args.out)
    for path in sorted(p for p in args.out.rglob("*") if p.is_file()):
        print(f"{path.stat().st_size:>9}  {path.relative_to(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
